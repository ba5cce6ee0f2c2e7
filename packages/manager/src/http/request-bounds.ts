import { managerLimits } from '../config.js';
import type { ManagerRequestErrorCode } from '../errors.js';

// The bounds every request part (body, query string, path parameters, headers) is held to before
// its schema is checked, whatever the route and whatever the schema says of a field: free-form
// fields (a notification's metadata, a release to publish) included. One walk over the parsed
// value, with its own stack (hostile nesting cannot overflow it), stopping at the first problem:
//
// - every string, object keys included, is well-formed UTF-16: a lone surrogate cannot be
//   canonicalized for the audit chain (RFC 8785 refuses it) and SQLite would store it as U+FFFD,
//   so it is refused here rather than after the store has changed;
// - every number is finite: JSON.parse turns 1e400 into Infinity, which is not JSON any more;
// - nesting stops at requestJsonMaxDepth and the count of values at requestJsonMaxValues, so
//   JSON.stringify, canonicalization and schema checks further on never meet a value they cannot
//   walk; the route's body limit bounds the bytes.

/** What is wrong with a request part, and the top-level field it is in (when the schema declares it). */
export interface RequestBoundsProblem {
  code: Extract<ManagerRequestErrorCode, 'TEXT_MALFORMED' | 'NUMBER_OUT_OF_RANGE' | 'JSON_TOO_DEEP' | 'JSON_TOO_LARGE'>;
  /** The top-level field, when it is one of `fields` (never a name the client chose). */
  field: string | undefined;
}

export interface RequestBounds {
  maxDepth: number;
  maxValues: number;
}

const defaultBounds: RequestBounds = { maxDepth: managerLimits.requestJsonMaxDepth, maxValues: managerLimits.requestJsonMaxValues };

// ES2024's String.prototype.isWellFormed (Node 20 has it; the project's lib is ES2023).
function wellFormed(text: string): boolean {
  return (text as unknown as { isWellFormed(): boolean }).isWellFormed();
}

const NO_FIELDS: ReadonlySet<string> = new Set();

/**
 * The first bound `value` breaks, or undefined. `fields` are the top-level names the part's schema
 * declares; a problem under one of them names it.
 */
export function requestBoundsProblem(value: unknown, fields: ReadonlySet<string> = NO_FIELDS, bounds: RequestBounds = defaultBounds): RequestBoundsProblem | undefined {
  const stack: { value: unknown; depth: number; field: string | undefined }[] = [{ value, depth: 0, field: undefined }];
  let values = 0;
  while (stack.length > 0) {
    const item = stack.pop();
    if (item === undefined) break;
    const { depth, field } = item;
    values += 1;
    if (values > bounds.maxValues) return { code: 'JSON_TOO_LARGE', field };
    const current = item.value;
    if (typeof current === 'string') {
      if (!wellFormed(current)) return { code: 'TEXT_MALFORMED', field };
    } else if (typeof current === 'number') {
      if (!Number.isFinite(current)) return { code: 'NUMBER_OUT_OF_RANGE', field };
    } else if (typeof current === 'object' && current !== null) {
      if (depth + 1 > bounds.maxDepth) return { code: 'JSON_TOO_DEEP', field };
      if (Array.isArray(current)) {
        for (const entry of current as unknown[]) stack.push({ value: entry, depth: depth + 1, field });
      } else {
        for (const [key, entry] of Object.entries(current)) {
          if (!wellFormed(key)) return { code: 'TEXT_MALFORMED', field };
          stack.push({ value: entry, depth: depth + 1, field: depth === 0 ? (fields.has(key) ? key : undefined) : field });
        }
      }
    }
  }
  return undefined;
}

/** The message of a refusal, naming the request part and, when known, its field. */
export function describeBoundsProblem(problem: RequestBoundsProblem, part: string, bounds: RequestBounds = defaultBounds): string {
  const where = problem.field === undefined ? `the request ${part}` : `field ${problem.field} of the request ${part}`;
  switch (problem.code) {
    case 'TEXT_MALFORMED':
      return `A string in ${where} is not well-formed Unicode (it holds a lone surrogate, \\ud800-\\udfff without its pair). Send valid UTF-8 text.`;
    case 'NUMBER_OUT_OF_RANGE':
      return `A number in ${where} is beyond the range of a double (it parses as infinity). Send a finite number.`;
    case 'JSON_TOO_DEEP':
      return `${where.charAt(0).toUpperCase()}${where.slice(1)} nests arrays and objects deeper than ${bounds.maxDepth} levels. Send flatter JSON.`;
    case 'JSON_TOO_LARGE':
      return `${where.charAt(0).toUpperCase()}${where.slice(1)} holds more than ${bounds.maxValues} values. Send less.`;
  }
}
