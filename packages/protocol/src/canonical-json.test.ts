import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { expectError } from '../../../test/helpers/expect-error.js';
import { CANONICAL_JSON_MAX_DEPTH, canonicalMembers, canonicalize } from './canonical-json.js';
import { AuditError } from './errors.js';

function expectUnsupported(value: unknown): void {
  expectError(() => canonicalize(value), AuditError, 'CANONICAL_JSON_UNSUPPORTED');
}

function double(bits: string): number {
  const view = new DataView(new ArrayBuffer(8));
  view.setBigUint64(0, BigInt(`0x${bits}`));
  return view.getFloat64(0);
}

// Input and expected output files of cyberphone/json-canonicalization testdata/ (the RFC 8785
// reference implementation), copied verbatim; invisible characters are written as escapes.
const vectors: [name: string, input: string, output: string][] = [
  ['arrays', '[\n  56,\n  {\n    "d": true,\n    "10": null,\n    "1": [ ]\n  }\n]', '[56,{"1":[],"10":null,"d":true}]'],
  [
    'french',
    '{\n  "peach": "This sorting order",\n  "péché": "is wrong according to French",\n  "pêche": "but canonicalization MUST",\n  "sin":   "ingnore locale"\n}\n',
    '{"peach":"This sorting order","péché":"is wrong according to French","pêche":"but canonicalization MUST","sin":"ingnore locale"}',
  ],
  [
    'structures',
    '{\n  "1": {"f": {"f": "hi","F": 5} ,"\\n": 56.0},\n  "10": { },\n  "": "empty",\n  "a": { },\n  "111": [ { } ],\n  "A": { }\n}',
    '{"":"empty","1":{"\\n":56,"f":{"F":5,"f":"hi"}},"10":{},"111":[{}],"A":{},"a":{}}',
  ],
  ['unicode', '{\n  "Unnormalized Unicode":"\\u1e0d\\u0307"\n}\n', '{"Unnormalized Unicode":"\u1e0d\u0307"}'],
  [
    'values',
    '{\n  "numbers": [1E30, 4.50, 333333333.33333329, 2e-3, 0.000000000000000000000000001],\n  "escaping": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",\n  "literals": [null, true, false]\n}',
    '{"escaping":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/","literals":[null,true,false],"numbers":[1e+30,4.5,333333333.3333333,0.002,1e-27]}',
  ],
  [
    'weird',
    '{\n  "\\u20ac": "Euro Sign",\n  "1": "One",\n  "\\u0080": "Control\\u007f",\n  "\\ud83d\\ude02": "Smiley",\n  "\\u00f6": "Latin Small Letter O With Diaeresis",\n  "\\ufb33": "Hebrew Letter Dalet With Dagesh",\n  "</script>": "Browser Challenge"\n}\n',
    '{"1":"One","</script>":"Browser Challenge","\u0080":"Control\u007f","ö":"Latin Small Letter O With Diaeresis","€":"Euro Sign","😂":"Smiley","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
  ],
  ['simpleString', '    "this is a test string 1235"', '"this is a test string 1235"'],
];

describe('canonicalize (RFC 8785)', () => {
  it.each(vectors)('matches the reference output for %s', (_name, input, output) => {
    expect(canonicalize(JSON.parse(input))).toBe(output);
  });

  it('produces the UTF-8 bytes RFC 8785 3.2.4 gives for its 3.2.2 sample', () => {
    const input = {
      // eslint-disable-next-line no-loss-of-precision -- RFC 8785's own sample has more digits than a double holds
      numbers: [333333333.33333329, 1e30, 4.5, 2e-3, 0.000000000000000000000000001],
      string: '\u20ac$\u000F\u000aA\'\u0042\u0022\u005c\\"/',
      literals: [null, true, false],
    };
    // RFC 8785 3.2.4, byte for byte.
    const expected = `
      7b 22 6c 69 74 65 72 61 6c 73 22 3a 5b 6e 75 6c 6c 2c 74 72
      75 65 2c 66 61 6c 73 65 5d 2c 22 6e 75 6d 62 65 72 73 22 3a
      5b 33 33 33 33 33 33 33 33 33 2e 33 33 33 33 33 33 33 2c 31
      65 2b 33 30 2c 34 2e 35 2c 30 2e 30 30 32 2c 31 65 2d 32 37
      5d 2c 22 73 74 72 69 6e 67 22 3a 22 e2 82 ac 24 5c 75 30 30
      30 66 5c 6e 41 27 42 5c 22 5c 5c 5c 5c 5c 22 2f 22 7d`.replace(/\s+/g, '');
    expect(Buffer.from(canonicalize(input), 'utf8').toString('hex')).toBe(expected);
  });

  it('sorts names by UTF-16 code units as in RFC 8785 3.2.3', () => {
    const input = { '\u20ac': 'Euro Sign', '\r': 'Carriage Return', '\ufb33': 'Hebrew Letter Dalet With Dagesh', '1': 'One', '\ud83d\ude00': 'Emoji: Grinning Face', '\u0080': 'Control', '\u00f6': 'Latin Small Letter O With Diaeresis' };
    expect(canonicalize(input)).toBe(
      '{"\\r":"Carriage Return","1":"One","\u0080":"Control","ö":"Latin Small Letter O With Diaeresis","€":"Euro Sign","😀":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
    );
  });

  // RFC 8785 Appendix B: IEEE 754 bit patterns and their canonical text.
  it.each([
    ['0000000000000000', '0'],
    ['8000000000000000', '0'],
    ['0000000000000001', '5e-324'],
    ['8000000000000001', '-5e-324'],
    ['7fefffffffffffff', '1.7976931348623157e+308'],
    ['ffefffffffffffff', '-1.7976931348623157e+308'],
    ['4340000000000000', '9007199254740992'],
    ['c340000000000000', '-9007199254740992'],
    ['4430000000000000', '295147905179352830000'],
    ['44b52d02c7e14af5', '9.999999999999997e+22'],
    ['44b52d02c7e14af6', '1e+23'],
    ['44b52d02c7e14af7', '1.0000000000000001e+23'],
    ['444b1ae4d6e2ef4e', '999999999999999700000'],
    ['444b1ae4d6e2ef4f', '999999999999999900000'],
    ['444b1ae4d6e2ef50', '1e+21'],
    ['3eb0c6f7a0b5ed8c', '9.999999999999997e-7'],
    ['3eb0c6f7a0b5ed8d', '0.000001'],
    ['41b3de4355555553', '333333333.3333332'],
    ['41b3de4355555554', '333333333.33333325'],
    ['41b3de4355555555', '333333333.3333333'],
    ['41b3de4355555556', '333333333.3333334'],
    ['41b3de4355555557', '333333333.33333343'],
    ['becbf647612f3696', '-0.0000033333333333333333'],
    ['43143ff3c1cb0959', '1424953923781206.2'],
  ])('serialises the double 0x%s as %s (Appendix B)', (bits, text) => {
    expect(canonicalize(double(bits))).toBe(text);
  });

  it.each([
    ['NaN (Appendix B 7fffffffffffffff)', double('7fffffffffffffff')],
    ['Infinity (Appendix B 7ff0000000000000)', double('7ff0000000000000')],
    ['-Infinity', -Infinity],
    ['a lone high surrogate', 'a\ud800b'],
    ['a lone low surrogate', '\udc00'],
    ['reversed surrogates', '\ude00\ud83d'],
    ['a lone surrogate in a name', { '\ud800': 1 }],
    ['undefined', undefined],
    ['undefined in an array', [1, undefined]],
    ['a hole in a sparse array', [1, , 3]], // eslint-disable-line no-sparse-arrays
    ['a bigint', 10n],
    ['a nested bigint', { a: [{ b: 1n }] }],
    ['a symbol', Symbol('s')],
    ['a symbol member', { s: Symbol('s') }],
    ['a function', () => 1],
    ['a function member', { f: () => 1 }],
    ['NaN deep inside', { a: { b: [0, { c: NaN }] } }],
    ['a Map', new Map([['a', 1]])],
    ['a Set', { s: new Set([1]) }],
    ['a typed array', new Uint8Array([1, 2])],
    ['a boxed number', { n: Object(1) as unknown }],
    ['a class instance', new (class Point { x = 1 })()],
  ])('refuses %s', (_what, value) => {
    expectUnsupported(value);
  });

  it('refuses a cycle but accepts a shared, acyclic reference', () => {
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic['self'] = cyclic;
    expectUnsupported(cyclic);
    const shared = { x: 1 };
    expect(canonicalize({ a: shared, b: [shared] })).toBe('{"a":{"x":1},"b":[{"x":1}]}');
  });

  it('refuses nesting beyond its depth limit and accepts it at the limit', () => {
    const nest = (depth: number): unknown => (depth === 0 ? 0 : [nest(depth - 1)]);
    expect(canonicalize(nest(CANONICAL_JSON_MAX_DEPTH))).toBe(`${'['.repeat(CANONICAL_JSON_MAX_DEPTH)}0${']'.repeat(CANONICAL_JSON_MAX_DEPTH)}`);
    expectUnsupported(nest(CANONICAL_JSON_MAX_DEPTH + 1));
  });

  it('skips undefined object members, as JSON.stringify does', () => {
    expect(canonicalize({ b: undefined, a: 1 })).toBe('{"a":1}');
  });

  it('uses toJSON like JSON.stringify, and holds its result to the same rules', () => {
    expect(canonicalize({ at: new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 6)) })).toBe('{"at":"2024-01-02T03:04:05.006Z"}');
    expect(canonicalize({ k: { toJSON: (key: string) => ({ key, z: 1, a: 2 }) } })).toBe('{"k":{"a":2,"key":"k","z":1}}');
    expectUnsupported({ bad: { toJSON: () => NaN } });
    expectUnsupported({ bad: { toJSON: () => new Map() } });
  });

  it('accepts objects without a prototype and names like __proto__', () => {
    const bare = Object.create(null) as Record<string, unknown>;
    bare['b'] = 2;
    bare['a'] = 1;
    expect(canonicalize(bare)).toBe('{"a":1,"b":2}');
    expect(canonicalize(JSON.parse('{"__proto__":{"x":1},"a":0}'))).toBe('{"__proto__":{"x":1},"a":0}');
  });

  it('escapes exactly as JSON.stringify does, and leaves U+007F, U+2028 and U+2029 alone', () => {
    const all = Array.from({ length: 0x80 }, (_, i) => String.fromCharCode(i)).join('') + '\u2028\u2029';
    expect(canonicalize(all)).toBe(JSON.stringify(all));
    expect(canonicalize('\u0000\u001f\b\t\n\f\r"\\/')).toBe('"\\u0000\\u001f\\b\\t\\n\\f\\r\\"\\\\/"');
  });
});

// Arbitrary JSON values, including awkward strings (any UTF-16, surrogate pairs) and numbers.
const jsonValue = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.integer(),
    fc.string({ unit: 'binary' }),
    fc.array(tie('value'), { maxLength: 5 }),
    fc.dictionary(fc.string({ unit: 'binary' }), tie('value'), { maxKeys: 5 }),
  ),
})).value;

describe('canonicalize properties', () => {
  it('is a fixed point: canonicalize(JSON.parse(canonicalize(x))) === canonicalize(x)', () => {
    fc.assert(
      fc.property(jsonValue, (value) => {
        const once = canonicalize(value);
        expect(canonicalize(JSON.parse(once))).toBe(once);
      }),
      { numRuns: 500 },
    );
  });

  it('round-trips: JSON.parse(canonicalize(x)) deep-equals x (with -0 read back as 0)', () => {
    fc.assert(
      fc.property(jsonValue, (value) => {
        const normalised: unknown = JSON.parse(JSON.stringify(value));
        expect(JSON.parse(canonicalize(value))).toStrictEqual(normalised);
      }),
      { numRuns: 300 },
    );
  });

  it('does not depend on the order members were inserted in', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string({ unit: 'binary' }), jsonValue, { maxKeys: 8 }), fc.integer(), (object, seed) => {
        const entries = Object.entries(object);
        // A deterministic shuffle driven by the seed.
        const shuffled = entries
          .map((entry, i) => ({ entry, k: Math.sin(seed + i) }))
          .sort((a, b) => a.k - b.k)
          .map(({ entry }) => entry);
        expect(canonicalize(Object.fromEntries(shuffled))).toBe(canonicalize(object));
      }),
      { numRuns: 300 },
    );
  });

  it('agrees with JSON.stringify on values it accepts, up to member order', () => {
    fc.assert(
      fc.property(jsonValue, (value) => {
        expect(JSON.parse(canonicalize(value))).toStrictEqual(JSON.parse(JSON.stringify(value)));
      }),
      { numRuns: 300 },
    );
  });

  it('canonicalMembers: joined, they are canonicalize() of the object; merged by name with other members, of the larger object', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string({ unit: 'binary' }), jsonValue, { maxKeys: 8 }), fc.dictionary(fc.string({ unit: 'binary' }), jsonValue, { maxKeys: 4 }), (object, more) => {
        const members = canonicalMembers(object);
        expect(`{${members.map((m) => m[1]).join(',')}}`).toBe(canonicalize(object));
        const extra = Object.fromEntries(Object.entries(more).filter(([name]) => !(name in object)));
        const merged = [...members, ...canonicalMembers(extra)].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
        expect(`{${merged.map((m) => m[1]).join(',')}}`).toBe(canonicalize({ ...object, ...extra }));
      }),
      { numRuns: 300 },
    );
    // toJSON, undefined members and refusals as canonicalize() has them.
    expect(canonicalMembers({ at: new Date(0), gone: undefined, n: 1 })).toEqual([['at', '"at":"1970-01-01T00:00:00.000Z"'], ['n', '"n":1']]);
    expectError(() => canonicalMembers({ bad: Number.NaN }), AuditError, 'CANONICAL_JSON_UNSUPPORTED');
    const cycle: Record<string, unknown> = {};
    cycle['self'] = cycle;
    expectError(() => canonicalMembers(cycle), AuditError, 'CANONICAL_JSON_UNSUPPORTED');
  });
});
