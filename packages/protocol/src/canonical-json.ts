// RFC 8785 JSON Canonicalization Scheme (JCS). The audit chain hashes records in this form, so two
// programs (or two versions of one) that hold the same JSON value always hash the same bytes.
//
// The data model is I-JSON (RFC 7493): null, booleans, finite IEEE 754 doubles, strings of
// well-formed UTF-16, arrays and objects. Anything outside it is refused with
// CANONICAL_JSON_UNSUPPORTED instead of being coerced the way JSON.stringify coerces it, because a
// silent coercion (NaN -> null, a Map -> {}, a lone surrogate -> U+FFFD once encoded as UTF-8)
// would sign something other than what the caller meant.

import { AuditError } from './errors.js';

/** A value in the JSON data model, as canonicalize() accepts and JSON.parse() returns. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
/** A JSON object: the `details` of an audit record, and any value canonicalisation accepts at the top level. */
export type JsonObject = { [key: string]: JsonValue };

// Nesting deeper than this is refused rather than risking a stack overflow on hostile input (the
// audit verifier canonicalizes lines read from a file it does not trust).
export const CANONICAL_JSON_MAX_DEPTH = 512; // nested arrays and objects

// A high surrogate not followed by a low one, or a low surrogate not preceded by a high one.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function unsupported(path: string, what: string): AuditError {
  return new AuditError(
    'CANONICAL_JSON_UNSUPPORTED',
    `Cannot canonicalize ${what} at ${path === '' ? 'the top level' : path}: RFC 8785 covers only null, booleans, finite numbers, well-formed strings, arrays and plain objects. Convert the value first (e.g. a bigint to a string).`,
  );
}

function isPlainObject(value: object): boolean {
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function describeObject(value: object): string {
  const ctor = (value as { constructor?: unknown }).constructor;
  return typeof ctor === 'function' && ctor.name !== '' ? `an instance of ${ctor.name}` : 'an object with a custom prototype';
}

function hasToJSON(value: object): value is { toJSON(key: string): unknown } {
  return typeof (value as { toJSON?: unknown }).toJSON === 'function';
}

function serializeString(text: string, path: string): string {
  if (LONE_SURROGATE.test(text)) throw unsupported(path, 'a string with a lone surrogate');
  // RFC 8785 3.2.2.2 prescribes exactly ECMAScript's JSON.stringify escaping: \b \t \n \f \r \" \\
  // as two-character escapes, other controls below U+0020 as lowercase \u00xx, everything else as is.
  return JSON.stringify(text);
}

function serialize(value: unknown, key: string, path: string, ancestors: Set<object>): string {
  // Like JSON.stringify, an object's toJSON (a Date's, say) decides how it is represented; its
  // result is then held to the same rules, so a toJSON cannot smuggle in an unsupported value.
  if (typeof value === 'object' && value !== null && !Array.isArray(value) && hasToJSON(value)) {
    value = value.toJSON(key);
    if (typeof value === 'object' && value !== null && !Array.isArray(value) && !isPlainObject(value)) {
      throw unsupported(path, 'a toJSON() result that is not a plain object');
    }
  }
  switch (typeof value) {
    case 'string':
      return serializeString(value, path);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw unsupported(path, String(value));
      // RFC 8785 3.2.2.3 is ECMAScript's Number::toString, which JSON.stringify applies; -0 becomes 0.
      return JSON.stringify(value);
    case 'undefined':
      throw unsupported(path, 'undefined');
    case 'bigint':
      throw unsupported(path, 'a bigint');
    case 'symbol':
      throw unsupported(path, 'a symbol');
    case 'function':
      throw unsupported(path, 'a function');
    case 'object':
      break;
  }
  if (value === null) return 'null';
  if (ancestors.has(value)) throw unsupported(path, 'a circular reference');
  if (ancestors.size >= CANONICAL_JSON_MAX_DEPTH) throw unsupported(path, `nesting deeper than ${CANONICAL_JSON_MAX_DEPTH} levels`);
  ancestors.add(value);
  try {
    if (Array.isArray(value)) {
      const items: string[] = [];
      for (let i = 0; i < value.length; i += 1) {
        // A hole in a sparse array reads as undefined and is refused like an explicit undefined:
        // JSON.stringify would turn either into null, which is not what the array held.
        items.push(serialize(value[i], String(i), `${path}[${i}]`, ancestors));
      }
      return `[${items.join(',')}]`;
    }
    // Maps, Sets, typed arrays, boxed primitives and class instances are refused: JSON.stringify
    // would write most of them as {} and lose their content without a word.
    if (!isPlainObject(value)) throw unsupported(path, describeObject(value));
    const record = value as Record<string, unknown>;
    // RFC 8785 3.2.3: members sorted by their names as arrays of UTF-16 code units, which is what
    // the default sort compares (no locale, no normalisation). Symbol-keyed members are not JSON
    // and are ignored, as JSON.stringify ignores them.
    const members: string[] = [];
    for (const name of Object.keys(record).sort()) {
      const member = record[name];
      // Choice: a member whose value is undefined is skipped, as JSON.stringify skips it, so
      // `{ agentId: undefined }` hashes like `{}` and survives a JSON round trip unchanged.
      // Functions and symbols are refused, although JSON.stringify would skip them too: they
      // are always a mistake in data that is about to be signed.
      if (member === undefined) continue;
      const memberPath = `${path}${/^[A-Za-z_$][\w$]*$/.test(name) ? `.${name}` : `[${JSON.stringify(name)}]`}`;
      members.push(`${serializeString(name, memberPath)}:${serialize(member, name, memberPath, ancestors)}`);
    }
    return `{${members.join(',')}}`;
  } finally {
    ancestors.delete(value);
  }
}

/**
 * Serialises `value` as RFC 8785 canonical JSON: no whitespace, object members sorted by UTF-16
 * code units, numbers as ECMAScript prints them, strings escaped as JSON.stringify escapes them.
 * Hash or sign the UTF-8 encoding of the result.
 *
 * Throws AuditError `CANONICAL_JSON_UNSUPPORTED` for NaN, ±Infinity, a lone surrogate, undefined
 * (except as an object member, which is skipped), a bigint, a symbol, a function, a circular
 * reference, or an object that is neither plain nor has a `toJSON` method.
 *
 * @example
 * ```ts
 * canonicalize({ b: [1e30, 4.5], a: 'é' }) // '{"a":"é","b":[1e+30,4.5]}'
 * ```
 */
export function canonicalize(value: unknown): string {
  return serialize(value, '', '', new Set());
}

/**
 * The members of a plain object as {@link canonicalize} writes them (`"name":value`), in canonical
 * order, each with its name; members whose value is undefined are left out. `{${members.map((m) => m[1]).join(',')}}`
 * is the object's canonical JSON; merged with other members by name first, it is the canonical JSON
 * of the larger object without serialising the shared members twice (the audit writer adds a
 * record's hash and signature to its hashed body this way).
 *
 * Throws as canonicalize() does.
 */
export function canonicalMembers(record: Readonly<Record<string, unknown>>): [name: string, member: string][] {
  const members: [string, string][] = [];
  const ancestors = new Set<object>([record]);
  for (const name of Object.keys(record).sort()) {
    const member = record[name];
    if (member === undefined) continue;
    const memberPath = /^[A-Za-z_$][\w$]*$/.test(name) ? `.${name}` : `[${JSON.stringify(name)}]`;
    members.push([name, `${serializeString(name, memberPath)}:${serialize(member, name, memberPath, ancestors)}`]);
  }
  return members;
}

