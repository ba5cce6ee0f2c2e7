import type { Static, TSchema } from '@sinclair/typebox';
import { FormatRegistry } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import type { TypeCheck } from '@sinclair/typebox/compiler';

// RFC 3339 date-time, as JSON Schema's `format: date-time`; Date.parse must also accept it.
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})$/i;

function registerFormats(): void {
  if (!FormatRegistry.Has('date-time')) {
    FormatRegistry.Set('date-time', (value) => DATE_TIME.test(value) && !Number.isNaN(Date.parse(value)));
  }
}

const compiled = new WeakMap<TSchema, TypeCheck<TSchema>>();

function checker<T extends TSchema>(schema: T): TypeCheck<T> {
  let check = compiled.get(schema) as TypeCheck<T> | undefined;
  if (check === undefined) {
    registerFormats();
    check = TypeCompiler.Compile(schema);
    compiled.set(schema, check);
  }
  return check;
}

/** One place where a value fails a schema. */
export interface SchemaProblem {
  /** JSON pointer to the offending value, e.g. `/file/size`. */
  path: string;
  /** What the schema expected there, as TypeBox words it. */
  message: string;
}

/**
 * Checks `value` against a wire schema with the rules drover's own peers apply (the `date-time`
 * format included); the compiled checker is cached per schema.
 *
 * @param schema - one of the wire schemas, e.g. {@link CheckinRequestSchema}
 * @param value - the parsed message
 * @param limit - how many problems to report at most (default 5)
 * @returns the first problems found, empty when `value` is valid
 */
export function schemaProblems(schema: TSchema, value: unknown, limit = 5): SchemaProblem[] {
  const check = checker(schema);
  if (check.Check(value)) return [];
  const problems: SchemaProblem[] = [];
  for (const error of check.Errors(value)) {
    problems.push({ path: error.path === '' ? '/' : error.path, message: error.message });
    if (problems.length >= limit) break;
  }
  return problems;
}

/**
 * True when `value` matches a wire schema (the `date-time` format included); narrows its type to
 * the schema's static type.
 *
 * @example
 * ```ts
 * if (!matchesSchema(CheckinResponseSchema, body)) throw new Error('not a check-in response');
 * body.nextCheckinSeconds; // typed
 * ```
 */
export function matchesSchema<T extends TSchema>(schema: T, value: unknown): value is Static<T> {
  return checker(schema).Check(value);
}

/** One line naming where `value` fails `schema`, for error messages. */
export function describeProblems(problems: SchemaProblem[]): string {
  return problems.map((p) => `${p.path}: ${p.message}`).join('; ');
}
