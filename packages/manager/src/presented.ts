import { matchesSchema } from '@drover/protocol';
import type { SchemaProblem } from '@drover/protocol';
import { describeProblems, sha256, toHex } from '@drover/protocol/internal';
import type { TSchema } from '@sinclair/typebox';

// What a client presented (a header, a path segment, a field of a refused request), and how far it
// may travel (docs/decisions/0022-what-a-client-presents.md):
//
// - into the audit log, which is permanent: a value the manager knows (an agent id it issued, a
//   release in its catalog) or that became its state (an enrolled host's name), as is; anything
//   else a client chose, above all what a refused request carried, only as its SHA-256. A client
//   that pastes a secret into X-Machine-ID must not find it in the chain forever after;
// - into an error message: only a value that matched its schema's pattern; else "the given ...".
//   Reflected text is how a secret ends up in a CI log or a proxy's error page.

/**
 * The lowercase hex SHA-256 of a value a client presented, for an audit record's `...Sha256`
 * field: it proves what was sent (hash the candidate and compare) without keeping it.
 */
export function presentedSha256(value: string): string {
  return toHex(sha256(value));
}

/** `value` when it matches `schema` (an id, a version), else `fallback`: what an error message may echo. */
export function echo(value: string, schema: TSchema, fallback: string): string {
  return matchesSchema(schema, value) ? value : fallback;
}

// Every property name a schema declares, at any depth: the words a problem's path may show.
const declaredNames = new WeakMap<TSchema, ReadonlySet<string>>();

function namesOf(schema: TSchema): ReadonlySet<string> {
  let names = declaredNames.get(schema);
  if (names !== undefined) return names;
  const found = new Set<string>();
  const seen = new Set<unknown>();
  const stack: unknown[] = [schema];
  while (stack.length > 0) {
    const node = stack.pop();
    if (typeof node !== 'object' || node === null || seen.has(node)) continue;
    seen.add(node);
    const properties = (node as { properties?: unknown }).properties;
    if (typeof properties === 'object' && properties !== null) for (const name of Object.keys(properties)) found.add(name);
    for (const child of Object.values(node)) stack.push(child);
  }
  names = found;
  declaredNames.set(schema, names);
  return names;
}

/**
 * One line naming where a request fails its schema, without echoing it: a path segment is shown
 * only when it is a property name the schema declares or an array index; any other (an unknown
 * key, a key of a free-form map) shows as `*`. TypeBox's messages themselves never quote a value.
 */
export function describeSchemaProblems(schema: TSchema, problems: readonly SchemaProblem[]): string {
  const names = namesOf(schema);
  const safe = problems.map((problem) => ({
    ...problem,
    path: problem.path === '/' ? '/' : problem.path.split('/').map((segment, i) => (i === 0 || names.has(segment) || /^\d{1,5}$/.test(segment) ? segment : '*')).join('/'),
  }));
  return describeProblems(safe);
}
