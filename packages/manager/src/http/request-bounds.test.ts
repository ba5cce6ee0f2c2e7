import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { requestBoundsProblem } from './request-bounds.js';

const bounds = { maxDepth: 32, maxValues: 10_000 };
// An independent oracle for well-formedness: the regular expression protocol's canonical JSON uses.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
// Any UTF-16 code units: surrogates alone, in pairs, reversed.
const units = fc.string({ maxLength: 8, unit: fc.integer({ min: 0, max: 0xffff }).map((code) => String.fromCharCode(code)) });

function nested(depth: number, arrays: boolean): unknown {
  let value: unknown = 0;
  for (let i = 0; i < depth; i++) value = arrays ? [value] : { a: value };
  return value;
}

describe('requestBoundsProblem', () => {
  it('refuses a string, as a value or a key, exactly when it holds a lone surrogate (property)', () => {
    fc.assert(
      fc.property(units, fc.boolean(), (text, asKey) => {
        const problem = requestBoundsProblem({ field: asKey ? { [text]: 1 } : [text] }, new Set(['field']), bounds);
        if (LONE_SURROGATE.test(text)) expect(problem).toEqual({ code: 'TEXT_MALFORMED', field: 'field' });
        else expect(problem).toBeUndefined();
      }),
      { numRuns: 500 },
    );
  });

  it('takes nesting up to maxDepth and refuses deeper, however deep, without overflowing its stack (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 200 }), fc.boolean(), (depth, arrays) => {
        const problem = requestBoundsProblem(nested(depth, arrays), new Set(), bounds);
        expect(problem?.code).toBe(depth > bounds.maxDepth ? 'JSON_TOO_DEEP' : undefined);
      }),
    );
    expect(requestBoundsProblem(JSON.parse(`${'['.repeat(100_000)}${']'.repeat(100_000)}`), new Set(), bounds)?.code).toBe('JSON_TOO_DEEP');
  });

  it('counts values: maxValues pass, one more is JSON_TOO_LARGE', () => {
    expect(requestBoundsProblem(Array.from({ length: bounds.maxValues - 1 }, () => 0), new Set(), bounds)).toBeUndefined();
    expect(requestBoundsProblem(Array.from({ length: bounds.maxValues }, () => 0), new Set(), bounds)?.code).toBe('JSON_TOO_LARGE');
  });

  it('refuses the numbers JSON.parse turns into infinity', () => {
    for (const text of ['1e400', '-1e999', '[0, {"a": 2e308}]']) expect(requestBoundsProblem(JSON.parse(text), new Set(), bounds)?.code, text).toBe('NUMBER_OUT_OF_RANGE');
    expect(requestBoundsProblem(JSON.parse('[1e308, -0, 5e-324]'), new Set(), bounds)).toBeUndefined();
  });

  it('accepts any JSON value within the bounds (property)', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 8 }), (value) => {
        expect(requestBoundsProblem(value, new Set(), bounds)).toBeUndefined();
      }),
      { numRuns: 300 },
    );
  });

  it('names the top-level field only when the schema declares it', () => {
    expect(requestBoundsProblem({ metadata: { x: nested(40, true) } }, new Set(['metadata']), bounds)).toEqual({ code: 'JSON_TOO_DEEP', field: 'metadata' });
    expect(requestBoundsProblem({ 'sk_live_secret': nested(40, true) }, new Set(['metadata']), bounds)).toEqual({ code: 'JSON_TOO_DEEP', field: undefined });
    expect(requestBoundsProblem({ '\ud800': 1 }, new Set(['metadata']), bounds)).toEqual({ code: 'TEXT_MALFORMED', field: undefined });
  });
});
