import { Type } from '@sinclair/typebox';
import type { SchemaOptions, Static, TLiteral, TNull, TSchema, TString, TUnion } from '@sinclair/typebox';

// What every wire family shares: scalar formats, ids, header names and the error body.
// Wire schemas are defined once, in this folder, and exported as JSON Schema too (agents may be
// written in other languages). Limits on lengths stop a peer from making us hold arbitrary
// amounts of data.
//
// Strict on input, tolerant on output: every request a drover server receives (bodies, query
// strings, path parameters) refuses unknown properties, so a misspelt field fails loudly instead of
// being ignored. Responses leave `additionalProperties` open, so a newer manager can add a field
// without breaking an older daemon: above all, the update command must stay readable by old
// daemons, or an out-of-date fleet could never be upgraded.

export const Hex64 = Type.String({ pattern: '^[0-9a-f]{64}$' });
export const KeyId = Type.String({ pattern: '^[0-9a-f]{16}$', description: 'First 16 hex of the SHA-256 of the raw public key.' });
export const Name = Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9][A-Za-z0-9._+-]*$' });

export const ArtifactSchema = Type.String({
  minLength: 1,
  maxLength: 64,
  pattern: '^[a-z0-9][a-z0-9._-]*$',
  description: '"agent" and "daemon" are the artifacts droverd installs.',
});
export const PlatformSchema = Type.String({ minLength: 1, maxLength: 64, pattern: '^[a-z0-9][a-z0-9._-]*$', description: 'e.g. linux-x64, linux-arm64' });
export const VersionSchema = Type.String({ minLength: 1, maxLength: 128, pattern: '^[0-9A-Za-z][0-9A-Za-z.+-]*$', description: 'A semantic version (leading v allowed) or a commit SHA (6-40 hex).' });

// An array of string literals as a TypeBox union whose Static type is the union of the literals.
type TLiterals<T extends readonly string[]> = { -readonly [K in keyof T]: TLiteral<T[K] & string> };
export function literalUnion<const T extends readonly [string, ...string[]]>(values: T, options: SchemaOptions = {}): TUnion<TLiterals<T>> {
  return Type.Union(values.map((value) => Type.Literal(value)), options) as unknown as TUnion<TLiterals<T>>;
}

export function nullable<T extends TSchema>(schema: T, options: SchemaOptions = {}): TUnion<[T, TNull]> {
  return Type.Union([schema, Type.Null()], options);
}

// Ids travel in URL paths (/v1/agents/{agentId}/checkin) and end up in file names and log lines:
// URL-safe characters only, starting with a letter or digit, so no id can smuggle a "/", a ".."
// or a query string into a route or a path.
const ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]*$';
function identifier(description: string): TString {
  return Type.String({ minLength: 1, maxLength: 128, pattern: ID_PATTERN, description });
}

export const AgentIdSchema = identifier('An agent (host) id, issued by the manager at enrollment.');
export const DeploymentIdSchema = identifier('A deployment (rollout) id, issued by the manager.');
export const CommandIdSchema = identifier('A command id: the daemon de-duplicates by it, so a command runs once however often it is delivered.');
export const MachineIdSchema = Type.String({
  pattern: '^[0-9a-f]{64}$',
  description: "Lowercase hex SHA-256 of the host's machine id (node-machine-id's hashed id), as sent in X-Machine-ID.",
});
export const ErrorCodeSchema = Type.String({
  minLength: 1,
  maxLength: 64,
  pattern: '^[A-Z][A-Z0-9_]*$',
  description: 'A stable error code listed in docs/errors.md, e.g. MACHINE_ID_MISMATCH.',
});
/** A version as a URL path segment: a safe subset of {@link VersionSchema} (no "/", no leading "."). */
export const VersionPathSegmentSchema = Type.String({
  minLength: 1,
  maxLength: 128,
  pattern: '^[A-Za-z0-9][A-Za-z0-9.+_-]*$',
  description: 'A version as it appears in a URL path: a semantic version (leading v allowed) or a commit SHA.',
});

export function dateTime(description = 'RFC 3339, e.g. 2026-11-24T12:00:00.000Z'): TString {
  return Type.String({ format: 'date-time', maxLength: 64, description });
}
// Free text we send back (messages, changelogs): bounded, so a client can cap what it reads.
export const ResponseText = Type.String({ maxLength: 65536 });
export const Ed25519PublicKeyBase64 = Type.String({ pattern: '^[A-Za-z0-9+/]{43}=$', description: 'Base64 of the raw 32-byte Ed25519 public key.' });
// Download locations: absolute http(s) URLs (presigned, for CDN offload) or a path on the manager
// ("/v1/download/..."), resolved against the manager's base URL. Never protocol-relative ("//host").
export const DownloadUrl = Type.String({
  minLength: 1,
  maxLength: 4096,
  pattern: '^(?:https?://[^\\s]+|/(?!/)[^\\s]*)$',
  description: 'Where to download the artifact: an absolute http(s) URL, or a path resolved against the manager URL.',
});

/** Header names of the wire protocol, lower-case as Node presents incoming headers. */
export const wireHeaders = {
  /** `Bearer service:<token>` (to an agent) or `Bearer <credential>` (to the manager). */
  authorization: 'authorization',
  /** Sent by the daemon to the manager on every call: the lowercase hex SHA-256 of the host's machine id (64 characters). */
  machineId: 'x-machine-id',
  /** Sent by the daemon to the manager on every check-in: the version the agent runs. */
  agentVersion: 'x-agent-version',
  /** Sent by the daemon to the manager on every check-in: the version the daemon runs. */
  daemonVersion: 'x-daemon-version',
  /** While an update is in progress and when reporting its outcome: the command's update nonce. */
  updateNonce: 'x-update-nonce',
  /** On a 503 from a busy agent: seconds to wait before asking again. */
  retryAfter: 'retry-after',
  /**
   * The command channel (decision 0041). On a check-in: the seconds the daemon lets the manager hold
   * it when there is no command yet (long poll). On the answer: the seconds the manager held it,
   * present only when the manager holds check-ins (the daemon then checks in again at once).
   */
  wait: 'x-drover-wait',
} as const;

// ---------------------------------------------------------------------------------------------
// Errors

export const ErrorDetailSchema = Type.Object(
  {
    code: ErrorCodeSchema,
    message: Type.String({ maxLength: 65536, description: 'What failed and what to do next. Never a secret: a token is named by its id.' }),
  },
  { description: 'More members may follow code and message (e.g. busy_with); clients ignore the ones they do not know.' },
);
export type ErrorDetail = Static<typeof ErrorDetailSchema>;

/** The body of every 4xx and 5xx response: `{"error":{"code","message"}}`, the code stable (docs/errors.md). */
export const ErrorBodySchema = Type.Object({ error: ErrorDetailSchema }, { $id: 'ErrorBody', description: 'The body of every 4xx and 5xx response.' });
/** The body of every 4xx and 5xx response; see {@link ErrorBodySchema}. */
export type ErrorBody = Static<typeof ErrorBodySchema>;
