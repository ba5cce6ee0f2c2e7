import { Type } from '@sinclair/typebox';
import type { SchemaOptions, Static, TLiteral, TNull, TSchema, TString, TUnion } from '@sinclair/typebox';
import { limits } from './config.js';

// Wire schemas, defined once here and exported as JSON Schema too (agents may be written in
// other languages). Limits on lengths stop a peer from making us hold arbitrary amounts of data.

const Hex64 = Type.String({ pattern: '^[0-9a-f]{64}$' });
const KeyId = Type.String({ pattern: '^[0-9a-f]{16}$', description: 'First 16 hex of the SHA-256 of the raw public key.' });
const Base64 = Type.String({ pattern: '^[A-Za-z0-9+/]*={0,2}$', maxLength: 1 << 20 });
const Name = Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9][A-Za-z0-9._+-]*$' });

export const ArtifactSchema = Type.String({
  minLength: 1,
  maxLength: 64,
  pattern: '^[a-z0-9][a-z0-9._-]*$',
  description: '"agent" and "daemon" are the artifacts droverd installs.',
});
export const PlatformSchema = Type.String({ minLength: 1, maxLength: 64, pattern: '^[a-z0-9][a-z0-9._-]*$', description: 'e.g. linux-x64, linux-arm64' });
export const VersionSchema = Type.String({ minLength: 1, maxLength: 128, pattern: '^[0-9A-Za-z][0-9A-Za-z.+-]*$', description: 'A semantic version (leading v allowed) or a commit SHA (6-40 hex).' });

export const DsseSignatureSchema = Type.Object({ keyid: Type.String({ maxLength: 64 }), sig: Base64 }, { additionalProperties: false });
export const DsseEnvelopeSchema = Type.Object(
  {
    payloadType: Type.String({ minLength: 1, maxLength: 256 }),
    payload: Base64,
    signatures: Type.Array(DsseSignatureSchema, { minItems: 1, maxItems: 16 }),
  },
  { additionalProperties: false, $id: 'DsseEnvelope' },
);
export type DsseEnvelope = Static<typeof DsseEnvelopeSchema>;

export const ReleaseFileSchema = Type.Object(
  {
    // path traversal: a bare file name, never a path, `.` or `..`.
    name: Type.String({ minLength: 1, maxLength: 255, pattern: '^(?!\\.{1,2}$)[^/\\\\\\u0000]+$' }),
    size: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'bytes' }),
    sha256: Hex64,
  },
  { additionalProperties: false },
);

export const ReleasePayloadSchema = Type.Object(
  {
    schema: Type.Literal('drover.release/v1'),
    artifact: ArtifactSchema,
    version: VersionSchema,
    commitSha: Type.Optional(Type.String({ pattern: '^[0-9a-f]{6,40}$' })),
    channel: Name,
    platform: PlatformSchema,
    file: ReleaseFileSchema,
    createdAt: Type.String({ format: 'date-time', maxLength: 64 }),
    expiresAt: Type.String({ format: 'date-time', maxLength: 64 }),
    changelog: Type.Optional(Type.String({ maxLength: 65536 })),
    minDaemonVersion: Type.Optional(VersionSchema),
  },
  { additionalProperties: false, $id: 'ReleasePayload' },
);
export type ReleasePayload = Static<typeof ReleasePayloadSchema>;

export const TrustedKeySchema = Type.Object(
  { keyid: KeyId, publicKey: Type.String({ description: 'base64 of the raw 32-byte Ed25519 key, or an SPKI PEM', maxLength: 4096 }), name: Type.Optional(Type.String({ maxLength: 128 })) },
  { additionalProperties: false },
);
export const TrustPolicySchema = Type.Object(
  {
    schema: Type.Optional(Type.Literal('drover.trust/v1')),
    threshold: Type.Integer({ minimum: 1, maximum: 16 }),
    keys: Type.Array(TrustedKeySchema, { minItems: 1, maxItems: 64 }),
  },
  { additionalProperties: false, $id: 'TrustPolicy' },
);
export type TrustPolicyDocument = Static<typeof TrustPolicySchema>;

export const NoncePayloadSchema = Type.Object(
  {
    v: Type.Literal(1),
    nonceId: Type.String({ minLength: 16, maxLength: 64, pattern: '^[A-Za-z0-9_-]+$' }),
    agentId: Type.String({ minLength: 1, maxLength: 128 }),
    machineId: Hex64,
    deploymentId: Type.String({ minLength: 1, maxLength: 128 }),
    artifact: ArtifactSchema,
    fromVersion: VersionSchema,
    toVersion: VersionSchema,
    rollback: Type.Boolean(),
    iat: Type.Integer({ minimum: 0, description: 'issued at, seconds since the epoch' }),
    exp: Type.Integer({ minimum: 0, description: 'expires at, seconds since the epoch' }),
  },
  { additionalProperties: false, $id: 'NoncePayload' },
);
export type NoncePayload = Static<typeof NoncePayloadSchema>;

// ---------------------------------------------------------------------------------------------
// Building blocks of the messages below.
//
// Strict on input, tolerant on output: every request a drover server receives (bodies, query
// strings, path parameters) refuses unknown properties, so a misspelt field fails loudly instead of
// being ignored. Responses leave `additionalProperties` open, so a newer manager can add a field
// without breaking an older daemon: above all, the update command must stay readable by old
// daemons, or an out-of-date fleet could never be upgraded.

// An array of string literals as a TypeBox union whose Static type is the union of the literals.
type TLiterals<T extends readonly string[]> = { -readonly [K in keyof T]: TLiteral<T[K] & string> };
function literalUnion<const T extends readonly [string, ...string[]]>(values: T, options: SchemaOptions = {}): TUnion<TLiterals<T>> {
  return Type.Union(values.map((value) => Type.Literal(value)), options) as unknown as TUnion<TLiterals<T>>;
}

function nullable<T extends TSchema>(schema: T, options: SchemaOptions = {}): TUnion<[T, TNull]> {
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
function nonceToken(description = 'A compact update nonce: base64url(payload) "." base64url(Ed25519 signature by the manager key).'): TString {
  return Type.String({ minLength: 3, maxLength: limits.nonceMaxLength, pattern: '^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$', description });
}
export const NonceTokenSchema = nonceToken();
/** A version as a URL path segment: a safe subset of {@link VersionSchema} (no "/", no leading "."). */
export const VersionPathSegmentSchema = Type.String({
  minLength: 1,
  maxLength: 128,
  pattern: '^[A-Za-z0-9][A-Za-z0-9.+_-]*$',
  description: 'A version as it appears in a URL path: a semantic version (leading v allowed) or a commit SHA.',
});

// Bearer credentials: RFC 6750's token68 alphabet, so a value can always go into an Authorization header.
const TOKEN68 = '^[A-Za-z0-9._~+/-]+=*$';
function dateTime(description = 'RFC 3339, e.g. 2026-11-24T12:00:00.000Z'): TString {
  return Type.String({ format: 'date-time', maxLength: 64, description });
}
// Free text we send back (messages, changelogs): bounded, so a client can cap what it reads.
const ResponseText = Type.String({ maxLength: 65536 });
const Ed25519PublicKeyBase64 = Type.String({ pattern: '^[A-Za-z0-9+/]{43}=$', description: 'Base64 of the raw 32-byte Ed25519 public key.' });
function ed25519Signature(description: string): TString {
  return Type.String({ pattern: '^[A-Za-z0-9+/]{86}==$', description: `Base64 of a 64-byte Ed25519 signature: ${description}` });
}
const CriticalSectionName = Type.String({ minLength: 1, maxLength: 256, description: "A critical section's name, as the agent's code named it." });
const Count = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
const ByteCount = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'bytes' });
// Download locations: absolute http(s) URLs (presigned, for CDN offload) or a path on the manager
// ("/v1/download/..."), resolved against the manager's base URL. Never protocol-relative ("//host").
const DownloadUrl = Type.String({
  minLength: 1,
  maxLength: 4096,
  pattern: '^(?:https?://[^\\s]+|/(?!/)[^\\s]*)$',
  description: 'Where to download the artifact: an absolute http(s) URL, or a path resolved against the manager URL.',
});

/** Header names of the wire protocol, lower-case as Node presents incoming headers. */
export const wireHeaders = {
  /** `Bearer service:<token>` (to an agent) or `Bearer <credential>` (to the manager). */
  authorization: 'authorization',
  /** Daemon -> manager on every call: {@link MachineIdSchema}. */
  machineId: 'x-machine-id',
  /** Daemon -> manager on every check-in: the version the agent runs. */
  agentVersion: 'x-agent-version',
  /** Daemon -> manager on every check-in: the version the daemon runs. */
  daemonVersion: 'x-daemon-version',
  /** While an update is in progress and when reporting its outcome: the command's update nonce. */
  updateNonce: 'x-update-nonce',
  /** On a 503 from a busy agent: seconds to wait before asking again. */
  retryAfter: 'retry-after',
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

export const ErrorBodySchema = Type.Object({ error: ErrorDetailSchema }, { $id: 'ErrorBody', description: 'The body of every 4xx and 5xx response.' });
export type ErrorBody = Static<typeof ErrorBodySchema>;

// ---------------------------------------------------------------------------------------------
// Agent endpoints (CIRIS-compatible): POST /v1/system/shutdown, GET /v1/system/health

export const ShutdownRequestSchema = Type.Object(
  {
    reason: Type.String({
      maxLength: 4096,
      description: 'Why the agent is asked to stop (e.g. the CD update text); control characters become spaces before it is logged.',
    }),
    force: Type.Optional(Type.Boolean({ description: 'Skip the busy check: drain for a bounded time, then stop anyway.', default: false })),
    confirm: Type.Boolean({ description: 'Must be true; false is refused with 400 CONFIRM_REQUIRED, so a stray call cannot stop the agent.' }),
  },
  { $id: 'ShutdownRequest', additionalProperties: false, description: 'POST /v1/system/shutdown, authorised by Bearer service:<token>.' },
);
export type ShutdownRequest = Static<typeof ShutdownRequestSchema>;

export const ShutdownResponseSchema = Type.Object(
  {
    data: Type.Object({
      status: Type.Literal('initiated'),
      message: ResponseText,
      shutdown_initiated: Type.Literal(true),
      timestamp: dateTime(),
    }),
  },
  { $id: 'ShutdownResponse', description: '200 from POST /v1/system/shutdown: the agent drains in-flight work, then exits 0.' },
);
export type ShutdownResponse = Static<typeof ShutdownResponseSchema>;

export const AgentBusyErrorSchema = Type.Object(
  {
    error: Type.Object({
      code: Type.Literal('AGENT_BUSY'),
      message: ResponseText,
      busy_with: Type.Array(CriticalSectionName, { maxItems: 1024, description: 'Distinct names of the critical sections running, oldest first.' }),
    }),
  },
  {
    $id: 'AgentBusyError',
    description: '503 from POST /v1/system/shutdown while a critical section runs, with a Retry-After header (seconds). The caller defers, it does not fail.',
  },
);
export type AgentBusyError = Static<typeof AgentBusyErrorSchema>;

export const agentHealthStatuses = ['healthy', 'degraded', 'starting'] as const;
export type AgentHealthStatus = (typeof agentHealthStatuses)[number];

export const AgentHealthSchema = Type.Object(
  {
    status: literalUnion(agentHealthStatuses),
    version: VersionSchema,
    busy: Type.Boolean({ description: 'True while any critical section runs: a shutdown now would get 503.' }),
  },
  { $id: 'AgentHealth', description: 'GET /v1/system/health.' },
);
export type AgentHealth = Static<typeof AgentHealthSchema>;

// ---------------------------------------------------------------------------------------------
// Enrollment: POST /v1/agents/enroll

const Fact = Type.String({ maxLength: 256 });
export const InventorySchema = Type.Object(
  {
    os: Type.Optional(
      Type.Object(
        {
          platform: Type.Optional(Fact),
          distro: Type.Optional(Fact),
          release: Type.Optional(Fact),
          codename: Type.Optional(Fact),
          kernel: Type.Optional(Fact),
          arch: Type.Optional(Fact),
        },
        { additionalProperties: false },
      ),
    ),
    cpu: Type.Optional(
      Type.Object(
        {
          manufacturer: Type.Optional(Fact),
          brand: Type.Optional(Fact),
          cores: Type.Optional(Type.Integer({ minimum: 0, maximum: 1 << 20, description: 'logical cores' })),
          physicalCores: Type.Optional(Type.Integer({ minimum: 0, maximum: 1 << 20 })),
          speedGHz: Type.Optional(Type.Number({ minimum: 0, maximum: 1000 })),
        },
        { additionalProperties: false },
      ),
    ),
    memory: Type.Optional(Type.Object({ totalBytes: Type.Optional(ByteCount), availableBytes: Type.Optional(ByteCount) }, { additionalProperties: false })),
    disks: Type.Optional(
      Type.Array(
        Type.Object(
          {
            mount: Type.String({ minLength: 1, maxLength: 4096 }),
            fs: Type.Optional(Type.String({ maxLength: 4096, description: 'the device or file system, e.g. /dev/sda1' })),
            type: Type.Optional(Type.String({ maxLength: 64, description: 'e.g. ext4' })),
            sizeBytes: Type.Optional(ByteCount),
            availableBytes: Type.Optional(ByteCount),
          },
          { additionalProperties: false },
        ),
        { maxItems: 64 },
      ),
    ),
    uptimeSeconds: Type.Optional(Type.Number({ minimum: 0 })),
    facts: Type.Optional(
      Type.Record(
        Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$' }),
        Type.Union([Type.String({ maxLength: 1024 }), Type.Number(), Type.Boolean(), Type.Null()]),
        {
          maxProperties: 64,
          additionalProperties: false,
          description: 'Any other fact about the host, as name -> scalar. New facts go here, so managers that predate them still accept them.',
        },
      ),
    ),
  },
  {
    $id: 'Inventory',
    additionalProperties: false,
    description: 'Facts about the host (what systeminformation reports). Every field is optional: report what could be read.',
  },
);
export type Inventory = Static<typeof InventorySchema>;

export const EnrollRequestSchema = Type.Object(
  {
    enrollmentToken: Type.String({ minLength: 16, maxLength: 512, pattern: TOKEN68, description: 'A token with seats and an expiry, from the operator.' }),
    machineId: MachineIdSchema,
    hostname: Type.String({ minLength: 1, maxLength: 253, pattern: '^[\\x21-\\x7E]+$', description: 'Printable ASCII, no spaces.' }),
    platform: PlatformSchema,
    arch: Type.String({ minLength: 1, maxLength: 32, pattern: '^[a-z0-9_]+$', description: "Node's process.arch, e.g. x64, arm64." }),
    agentVersion: VersionSchema,
    daemonVersion: VersionSchema,
    inventory: InventorySchema,
  },
  { $id: 'EnrollRequest', additionalProperties: false, description: 'POST /v1/agents/enroll, with the X-Machine-ID header.' },
);
export type EnrollRequest = Static<typeof EnrollRequestSchema>;

export const ManagerKeySchema = Type.Object({ keyid: KeyId, publicKey: Ed25519PublicKeyBase64 }, { description: 'A manager key that signs update nonces.' });
export type ManagerKey = Static<typeof ManagerKeySchema>;

export const EnrollResponseSchema = Type.Object(
  {
    agentId: AgentIdSchema,
    credential: Type.String({ minLength: 16, maxLength: 512, pattern: TOKEN68, description: 'Sent back as Authorization: Bearer <credential>. Store it 0600.' }),
    serviceToken: Type.String({
      minLength: 32,
      maxLength: 512,
      pattern: '^[A-Za-z0-9_-]+$',
      description: 'base64url; the agent reads it from DROVER_SERVICE_TOKEN and accepts Bearer service:<token>.',
    }),
    managerKeys: Type.Array(ManagerKeySchema, {
      minItems: 1,
      maxItems: 16,
      description: 'Trusted only if the daemon config pins one of them, or says tofu: true.',
    }),
    checkinIntervalSeconds: Type.Integer({ minimum: 5, maximum: 86400 }),
  },
  { $id: 'EnrollResponse', description: '200 from POST /v1/agents/enroll.' },
);
export type EnrollResponse = Static<typeof EnrollResponseSchema>;

// ---------------------------------------------------------------------------------------------
// Check-in: POST /v1/agents/{agentId}/checkin

/** Steps of the daemon's update state machine, in order (`deferred` follows `draining` when the agent is busy). */
export const updateSteps = [
  'received',
  'command_verified',
  'downloading',
  'downloaded',
  'artifact_verified',
  'staged',
  'draining',
  'deferred',
  'swapped',
  'starting',
  'health_check',
  'committed',
  'rolling_back',
  'rolled_back',
] as const;
export type UpdateStep = (typeof updateSteps)[number];

export const UpdateProgressSchema = Type.Object(
  {
    commandId: CommandIdSchema,
    step: literalUnion(updateSteps),
    nonce: Type.Optional(NonceTokenSchema),
  },
  { additionalProperties: false, description: "The update in progress, as the daemon's journal records it." },
);
export type UpdateProgress = Static<typeof UpdateProgressSchema>;

export const DaemonStateSchema = Type.Object(
  {
    agentVersion: VersionSchema,
    daemonVersion: VersionSchema,
    update: Type.Optional(UpdateProgressSchema),
  },
  { $id: 'DaemonState', additionalProperties: false, description: 'What the daemon runs, and the update it is carrying out, if any.' },
);
export type DaemonState = Static<typeof DaemonStateSchema>;

/** What the daemon can say of its agent: the agent's own statuses, or that it could not get one. */
export const agentHealthReportStatuses = [...agentHealthStatuses, 'unreachable', 'stopped'] as const;
export type AgentHealthReportStatus = (typeof agentHealthReportStatuses)[number];

export const AgentHealthReportSchema = Type.Object(
  {
    status: literalUnion(agentHealthReportStatuses, {
      description: "The agent's health status; unreachable: running but its health route did not answer; stopped: not running.",
    }),
    version: Type.Optional(VersionSchema),
    busy: Type.Boolean(),
    busyWith: Type.Optional(Type.Array(CriticalSectionName, { maxItems: 64 })),
    checkedAt: Type.Optional(dateTime()),
  },
  { $id: 'AgentHealthReport', additionalProperties: false, description: "The agent's health as the daemon last read it from GET /v1/system/health." },
);
export type AgentHealthReport = Static<typeof AgentHealthReportSchema>;

/**
 * How a command ended. `deferred` is a progress report, not an end: the agent was busy, the daemon
 * retries until the command's deadline (or the end of its deferral window) and reports again.
 */
export const commandOutcomes = ['succeeded', 'failed', 'rolled_back', 'deferred', 'rejected'] as const;
export type CommandOutcome = (typeof commandOutcomes)[number];

export const CommandResultSchema = Type.Object(
  {
    commandId: CommandIdSchema,
    outcome: literalUnion(commandOutcomes),
    detail: Type.Object(
      {
        code: Type.Optional(ErrorCodeSchema),
        message: Type.Optional(Type.String({ maxLength: 4096 })),
      },
      { additionalProperties: false, description: 'Why, for any outcome but succeeded: the stable code the daemon refused or failed with.' },
    ),
    nonce: Type.Optional(nonceToken("The command's update nonce (required for results of update commands): the manager checks it issued it, and accepts it once.")),
  },
  { $id: 'CommandResult', additionalProperties: false },
);
export type CommandResult = Static<typeof CommandResultSchema>;

export const CheckinRequestSchema = Type.Object(
  {
    state: DaemonStateSchema,
    health: AgentHealthReportSchema,
    acks: Type.Array(CommandIdSchema, {
      maxItems: 64,
      description: 'Commands received and persisted since the last check-in; the manager stops re-sending them.',
    }),
    results: Type.Array(CommandResultSchema, {
      maxItems: 64,
      description: 'Outcomes not yet reported; the daemon sends each again until a check-in carrying it gets a 200.',
    }),
    inventory: Type.Optional(InventorySchema),
  },
  {
    $id: 'CheckinRequest',
    additionalProperties: false,
    description: 'POST /v1/agents/{agentId}/checkin, with Authorization: Bearer <credential> and the CheckinHeaders.',
  },
);
export type CheckinRequest = Static<typeof CheckinRequestSchema>;

export const CheckinHeadersSchema = Type.Object(
  {
    [wireHeaders.machineId]: MachineIdSchema,
    [wireHeaders.agentVersion]: VersionSchema,
    [wireHeaders.daemonVersion]: VersionSchema,
    [wireHeaders.updateNonce]: Type.Optional(NonceTokenSchema),
  },
  { $id: 'CheckinHeaders', description: 'Headers of a check-in (other headers may be present).' },
);
export type CheckinHeaders = Static<typeof CheckinHeadersSchema>;

export const CheckinParamsSchema = Type.Object({ agentId: AgentIdSchema }, { $id: 'CheckinParams', additionalProperties: false, description: 'Path parameters of POST /v1/agents/{agentId}/checkin.' });
export type CheckinParams = Static<typeof CheckinParamsSchema>;

// The update command's fields, shared by UpdateCommand and its member of the Command union (a
// union of one type would otherwise keep UpdateCommand's $id instead of taking Command's).
const updateCommandProperties = {
  id: CommandIdSchema,
  type: Type.Literal('update'),
  artifact: literalUnion(['agent', 'daemon']),
  release: DsseEnvelopeSchema,
  url: DownloadUrl,
  nonce: NonceTokenSchema,
  force: Type.Boolean({ description: 'Stop the agent even if busy, after a drain of drainTimeoutSeconds.' }),
  drainTimeoutSeconds: Type.Integer({ minimum: 0, maximum: 86400 }),
  deadline: dateTime('Give up (outcome failed, or rolled_back once swapped) if not committed by then.'),
  // Optional, so a command of a manager that predates it stays valid; a daemon that predates it
  // ignores it (responses are read tolerantly, see above) and defers until `deadline` only.
  deferralWindowSeconds: Type.Optional(
    Type.Number({
      minimum: 0,
      maximum: 30 * 86400,
      description:
        'How long the daemon may keep deferring this update for a busy agent, from its first deferral; then it gives up and reports failed DEFERRAL_WINDOW_EXPIRED, leaving the running version. Absent: bounded by deadline only.',
    }),
  ),
};
export const UpdateCommandSchema = Type.Object(updateCommandProperties, {
  $id: 'UpdateCommand',
  description: 'Install a signed release. The daemon verifies the release and the nonce before acting on anything else in the command.',
});
export type UpdateCommand = Static<typeof UpdateCommandSchema>;

// Commands are a union discriminated by `type`: a new kind of command is a new member here.
export const CommandSchema = Type.Union([Type.Object(updateCommandProperties)], {
  $id: 'Command',
  description: 'A command for the daemon, discriminated by type; today only update.',
});
export type Command = Static<typeof CommandSchema>;

/** Every command's common part: what a daemon can read of a command type it does not know. */
export const CommandStubSchema = Type.Object(
  {
    id: CommandIdSchema,
    type: Type.String({ minLength: 1, maxLength: 64, pattern: '^[a-z][a-z0-9_.-]*$' }),
  },
  { description: 'A command: validate each against Command; answer one of an unknown type with a rejected result, so the manager stops re-sending it.' },
);
export type CommandStub = Static<typeof CommandStubSchema>;

const checkinCommands = Type.Array(CommandStubSchema, { maxItems: 32, description: 'Re-sent on every check-in until acked.' });
const nextCheckinSeconds = Type.Integer({ minimum: 1, maximum: 86400 });

export const CheckinResponseSchema = Type.Object(
  { commands: checkinCommands, nextCheckinSeconds },
  { $id: 'CheckinResponse', description: '200 from a check-in.' },
);
export type CheckinResponse = Static<typeof CheckinResponseSchema>;

export const CheckinUpgradeRequiredSchema = Type.Object(
  { error: ErrorDetailSchema, commands: checkinCommands, nextCheckinSeconds },
  {
    $id: 'CheckinUpgradeRequired',
    description: "426 from a check-in: the agent's version is below the manager's minimum. The commands still come, so an old agent can always upgrade.",
  },
);
export type CheckinUpgradeRequired = Static<typeof CheckinUpgradeRequiredSchema>;

// ---------------------------------------------------------------------------------------------
// Releases and downloads

export const ReleaseLatestQuerySchema = Type.Object(
  {
    artifact: ArtifactSchema,
    channel: Type.Optional(Name),
    platform: PlatformSchema,
  },
  { $id: 'ReleaseLatestQuery', additionalProperties: false, description: "Query of GET /v1/releases/latest; without channel, the manager's default channel." },
);
export type ReleaseLatestQuery = Static<typeof ReleaseLatestQuerySchema>;

export const ReleaseParamsSchema = Type.Object(
  { artifact: ArtifactSchema, version: VersionPathSegmentSchema },
  { $id: 'ReleaseParams', additionalProperties: false, description: 'Path parameters of GET /v1/releases/{artifact}/{version}.' },
);
export type ReleaseParams = Static<typeof ReleaseParamsSchema>;

export const ReleaseResponseSchema = Type.Object(
  {
    release: DsseEnvelopeSchema,
    manifest: ReleasePayloadSchema,
    url: DownloadUrl,
  },
  {
    $id: 'ReleaseResponse',
    description:
      "GET /v1/releases/latest and GET /v1/releases/{artifact}/{version}. manifest is the envelope's payload decoded, for display only: act only on the payload that verifying release returns.",
  },
);
export type ReleaseResponse = Static<typeof ReleaseResponseSchema>;

export const DownloadParamsSchema = Type.Object(
  { artifact: ArtifactSchema, version: VersionPathSegmentSchema, platform: PlatformSchema },
  { $id: 'DownloadParams', additionalProperties: false, description: 'Path parameters of GET /v1/download/{artifact}/{version}/{platform}.' },
);
export type DownloadParams = Static<typeof DownloadParamsSchema>;

export const DownloadQuerySchema = Type.Object(
  {
    expires: Type.Optional(Type.String({ pattern: '^[0-9]{1,12}$', description: 'seconds since the epoch' })),
    sig: Type.Optional(Type.String({ pattern: '^[0-9a-f]{64}$', description: 'hex HMAC-SHA256 of the presigned URL' })),
  },
  {
    $id: 'DownloadQuery',
    additionalProperties: false,
    description: 'Query of a presigned download: both expires and sig, or neither (then an agent credential authorises).',
  },
);
export type DownloadQuery = Static<typeof DownloadQuerySchema>;

// ---------------------------------------------------------------------------------------------
// Deploy API (CIRIS-compatible): POST /manager/v1/updates/notify, GET /manager/v1/updates/status

export const deploymentStrategies = ['canary', 'immediate', 'manual'] as const;
export type DeploymentStrategy = (typeof deploymentStrategies)[number];
export const riskLevels = ['low', 'medium', 'high', 'unknown'] as const;
export type RiskLevel = (typeof riskLevels)[number];
/** CIRIS's deployment statuses. */
export const deploymentStatuses = [
  'pending',
  'in_progress',
  'paused',
  'completed',
  'failed',
  'cancelled',
  'rejected',
  'rolling_back',
  'rolled_back',
  'rollback_proposed',
] as const;
export type DeploymentStatusValue = (typeof deploymentStatuses)[number];
/** Where one target of a rollout stands: pending -> notified -> [deferred] -> updating -> health_check -> an end. */
export const rolloutTargetStates = ['pending', 'notified', 'deferred', 'updating', 'health_check', 'succeeded', 'failed', 'skipped', 'rolled_back'] as const;
export type RolloutTargetState = (typeof rolloutTargetStates)[number];

const ImageReference = Type.String({ maxLength: 512, description: 'A container image, e.g. ghcr.io/cirisai/ciris-agent:latest' });
// CIRIS's metadata is a free-form dict; keys are bounded and free of control characters so they log safely.
const Metadata = Type.Record(Type.String({ pattern: '^[^\\u0000-\\u001f]{1,128}$' }), Type.Unknown(), {
  maxProperties: 64,
  additionalProperties: false,
  default: {},
  description: 'Additional deployment metadata.',
});

// Optional fields CIRIS declares Optional[...] accept null too, as its pydantic model does; the
// defaults are CIRIS's.
export const UpdateNotificationSchema = Type.Object(
  {
    agent_image: Type.Optional(nullable(ImageReference)),
    gui_image: Type.Optional(nullable(ImageReference)),
    nginx_image: Type.Optional(nullable(ImageReference)),
    version: Type.Optional(nullable(Type.String({ maxLength: 128, description: 'Semantic version if available' }))),
    commit_sha: Type.Optional(nullable(Type.String({ maxLength: 64, pattern: '^[0-9a-fA-F]*$' }))),
    changelog: Type.Optional(nullable(Type.String({ maxLength: 65536, description: 'Release notes: one entry a line.' }))),
    risk_level: Type.Optional(nullable(literalUnion(riskLevels), { default: 'unknown' })),
    strategy: Type.Optional(literalUnion(deploymentStrategies, { default: 'canary' })),
    message: Type.Optional(Type.String({ maxLength: 4096, default: 'Update available' })),
    metadata: Type.Optional(Metadata),
    source: Type.Optional(nullable(Type.String({ maxLength: 128 }), { default: 'github-actions' })),
    artifact: Type.Optional(ArtifactSchema),
    release: Type.Optional(DsseEnvelopeSchema),
    supersede: Type.Optional(
      Type.Boolean({ default: false, description: 'drover: replace the active deployment of the same artifact instead of getting 409.' }),
    ),
  },
  {
    $id: 'UpdateNotification',
    additionalProperties: false,
    description:
      "POST /manager/v1/updates/notify, Authorization: Bearer <deploy token>: CIRIS's UpdateNotification plus drover's artifact (default agent), release (the signed release to roll out; omitted, the manager takes artifact at version from its catalog) and supersede. Beyond this schema the server requires one of agent_image, gui_image, nginx_image (push mode, as CIRIS does) or a release or a version.",
  },
);
export type UpdateNotification = Static<typeof UpdateNotificationSchema>;

export const UpdateNotifyResponseSchema = Type.Object(
  {
    deployment_id: DeploymentIdSchema,
    status: literalUnion([...deploymentStatuses, 'staged']),
    message: ResponseText,
    agents_affected: Count,
    deployment_type: Type.Optional(Type.String({ maxLength: 64 })),
  },
  { $id: 'UpdateNotifyResponse', description: '200 from POST /manager/v1/updates/notify.' },
);
export type UpdateNotifyResponse = Static<typeof UpdateNotifyResponseSchema>;

export const DeploymentEventSchema = Type.Object(
  {
    timestamp: dateTime(),
    event_type: Type.String({ minLength: 1, maxLength: 64, description: 'e.g. started, phase_started, agent_updated, agent_deferred, completed, failed' }),
    message: ResponseText,
    details: Type.Optional(nullable(Type.Record(Type.String(), Type.Unknown()))),
  },
  { $id: 'DeploymentEvent', description: "One event of a deployment's timeline (CIRIS's DeploymentEvent)." },
);
export type DeploymentEvent = Static<typeof DeploymentEventSchema>;

export const DeploymentTargetSchema = Type.Object(
  {
    agent_id: AgentIdSchema,
    state: literalUnion(rolloutTargetStates),
    phase: nullable(Type.String({ maxLength: 64 })),
    from_version: nullable(VersionSchema),
    to_version: VersionSchema,
    attempts: Count,
    updated_at: dateTime(),
    deferred_until: Type.Optional(nullable(dateTime())),
    message: Type.Optional(ResponseText),
    error: Type.Optional(nullable(ErrorDetailSchema)),
  },
  { $id: 'DeploymentTarget', description: 'drover: where one agent stands in a deployment.' },
);
export type DeploymentTarget = Static<typeof DeploymentTargetSchema>;

export const DeploymentStatusSchema = Type.Object(
  {
    deployment_id: DeploymentIdSchema,
    notification: Type.Optional(nullable(UpdateNotificationSchema)),
    agents_total: Count,
    agents_updated: Count,
    agents_deferred: Count,
    agents_failed: Count,
    canary_phase: nullable(
      Type.String({
        maxLength: 64,
        description: "Group phases use CIRIS's names (explorers, early_adopters, general); percentage phases their share, e.g. 30%.",
      }),
    ),
    started_at: nullable(dateTime()),
    staged_at: Type.Optional(nullable(dateTime())),
    completed_at: nullable(dateTime()),
    status: literalUnion(deploymentStatuses),
    message: ResponseText,
    events: Type.Array(DeploymentEventSchema, { maxItems: 10000 }),
    strategy: nullable(literalUnion(deploymentStrategies)),
    updated_at: Type.Optional(nullable(dateTime())),
    agents_pending_restart: Type.Optional(Type.Array(AgentIdSchema, { maxItems: 100000 })),
    agents_in_progress: Type.Optional(Type.Record(Type.String(), Type.String({ maxLength: 64 }))),
    canary_assignments: Type.Optional(nullable(Type.Record(Type.String(), Type.Array(AgentIdSchema, { maxItems: 100000 })))),
    artifact: ArtifactSchema,
    version: nullable(VersionSchema),
    agents: Type.Array(DeploymentTargetSchema, { maxItems: 100000, description: 'drover: every target of the deployment.' }),
  },
  { $id: 'DeploymentStatus', description: "A deployment: CIRIS's DeploymentStatus fields plus drover's per-agent states." },
);
export type DeploymentStatus = Static<typeof DeploymentStatusSchema>;

export const DeploymentStatusResponseSchema = Type.Union([DeploymentStatusSchema, Type.Null()], {
  $id: 'DeploymentStatusResponse',
  description: 'GET /manager/v1/updates/status[?deployment_id=]: null when no id is given and no deployment is active (as CIRIS answers).',
});
export type DeploymentStatusResponse = Static<typeof DeploymentStatusResponseSchema>;

export const DeploymentStatusQuerySchema = Type.Object(
  { deployment_id: Type.Optional(DeploymentIdSchema) },
  { $id: 'DeploymentStatusQuery', additionalProperties: false, description: 'Query of GET /manager/v1/updates/status.' },
);
export type DeploymentStatusQuery = Static<typeof DeploymentStatusQuerySchema>;

export const deploymentActions = ['pause', 'resume', 'abort', 'promote', 'rollback'] as const;
export type DeploymentAction = (typeof deploymentActions)[number];

export const DeploymentActionParamsSchema = Type.Object(
  { deployment_id: DeploymentIdSchema, action: literalUnion(deploymentActions) },
  {
    $id: 'DeploymentActionParams',
    additionalProperties: false,
    description: 'Path parameters of POST /manager/v1/updates/{deployment_id}/{action}, with an admin token; answered with DeploymentStatus.',
  },
);
export type DeploymentActionParams = Static<typeof DeploymentActionParamsSchema>;

export const DeploymentActionRequestSchema = Type.Object(
  { reason: Type.Optional(Type.String({ maxLength: 1024, description: 'Recorded in the audit log and the deployment events.' })) },
  { $id: 'DeploymentActionRequest', additionalProperties: false, description: 'Body of a deployment action; an empty body means {}.' },
);
export type DeploymentActionRequest = Static<typeof DeploymentActionRequestSchema>;

export const LatestChangelogResponseSchema = Type.Object(
  {
    artifact: ArtifactSchema,
    version: VersionSchema,
    commit_sha: nullable(Type.String({ pattern: '^[0-9a-f]{6,40}$' })),
    released_at: dateTime(),
    changelog: ResponseText,
    latest: Type.Object({
      version: VersionSchema,
      date: Type.String({ maxLength: 64, description: 'YYYY-MM-DD' }),
      changes: Type.Array(
        Type.Object({
          type: Type.String({ maxLength: 32, description: 'The conventional-commit prefix of the line (fix, feat, ...), else change.' }),
          description: Type.String({ maxLength: 4096 }),
        }),
        { maxItems: 1000 },
      ),
    }),
    summary: ResponseText,
  },
  {
    $id: 'LatestChangelogResponse',
    description: "GET /manager/v1/updates/latest/changelog: the latest release's changelog, raw and as CIRIS's latest.changes list.",
  },
);
export type LatestChangelogResponse = Static<typeof LatestChangelogResponseSchema>;

// ---------------------------------------------------------------------------------------------
// Audit log: one record a line, and signers.json
//
// The record schema is as lenient as the verifier (verifyAuditLog) and no more, so the two never
// disagree about a line; it stays open because a later version may add fields, which the hash covers.

const AUDIT_TEXT_MAX_LENGTH = 1024 * 1024; // characters: a whole record line is at most this long
function auditText(description: string): TString {
  return Type.String({ minLength: 1, maxLength: AUDIT_TEXT_MAX_LENGTH, description });
}
export const AuditRecordSchema = Type.Object(
  {
    seq: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, description: '1 for the first record, then +1 per record, no gaps.' }),
    ts: dateTime(),
    event: auditText('What happened, e.g. token.used, agent.enrolled, deployment.started.'),
    actor: auditText('Who did it: an operator, agent:<id>, system.'),
    agentId: Type.Optional(Type.String({ maxLength: AUDIT_TEXT_MAX_LENGTH })),
    deploymentId: Type.Optional(Type.String({ maxLength: AUDIT_TEXT_MAX_LENGTH })),
    tokenId: Type.Optional(Type.String({ maxLength: AUDIT_TEXT_MAX_LENGTH, description: "A token's id (first 16 hex of its SHA-256), never the token." })),
    outcome: auditText('How it ended, e.g. success, failure, denied, deferred.'),
    details: Type.Record(Type.String(), Type.Unknown(), { description: 'Any JSON object; never a secret.' }),
    prev: Type.String({ pattern: '^[0-9a-f]{64}$', description: "The previous record's hash; 64 zeros before the first." }),
    hash: Type.String({
      pattern: '^[0-9a-f]{64}$',
      description: 'hex SHA-256(RFC 8785 canonical JSON of the record without prev/hash/kid/sig || the 32 bytes of prev).',
    }),
    kid: Type.String({ pattern: '^[\\x21-\\x7E]{1,256}$', description: 'The signing key, named in signers.json.' }),
    sig: ed25519Signature('Ed25519 over the 32 bytes of hash, by the key kid.'),
  },
  { $id: 'AuditRecord', description: 'One line of the audit log (JSON Lines; each line the canonical JSON of a record).' },
);
export type AuditLogRecord = Static<typeof AuditRecordSchema>;

export const AuditSignersSchema = Type.Object(
  {
    signers: Type.Array(
      Type.Object(
        {
          kid: Type.String({ pattern: '^[\\x21-\\x7E]{1,256}$' }),
          algorithm: Type.Literal('ed25519'),
          publicKey: Ed25519PublicKeyBase64,
        },
        { additionalProperties: false },
      ),
      { minItems: 1, maxItems: 1024, description: 'Distinct kids.' },
    ),
  },
  { $id: 'AuditSigners', additionalProperties: false, description: 'signers.json: the keys whose audit records a verifier accepts.' },
);
export type AuditSignersFile = Static<typeof AuditSignersSchema>;

/** Every wire schema by name, for the JSON Schema files and the protocol reference. */
export const wireSchemas: Record<string, TSchema> = {
  DsseEnvelope: DsseEnvelopeSchema,
  ReleasePayload: ReleasePayloadSchema,
  TrustPolicy: TrustPolicySchema,
  NoncePayload: NoncePayloadSchema,
  ErrorBody: ErrorBodySchema,
  ShutdownRequest: ShutdownRequestSchema,
  ShutdownResponse: ShutdownResponseSchema,
  AgentBusyError: AgentBusyErrorSchema,
  AgentHealth: AgentHealthSchema,
  Inventory: InventorySchema,
  EnrollRequest: EnrollRequestSchema,
  EnrollResponse: EnrollResponseSchema,
  DaemonState: DaemonStateSchema,
  AgentHealthReport: AgentHealthReportSchema,
  CommandResult: CommandResultSchema,
  CheckinRequest: CheckinRequestSchema,
  CheckinHeaders: CheckinHeadersSchema,
  CheckinParams: CheckinParamsSchema,
  UpdateCommand: UpdateCommandSchema,
  Command: CommandSchema,
  CheckinResponse: CheckinResponseSchema,
  CheckinUpgradeRequired: CheckinUpgradeRequiredSchema,
  ReleaseLatestQuery: ReleaseLatestQuerySchema,
  ReleaseParams: ReleaseParamsSchema,
  ReleaseResponse: ReleaseResponseSchema,
  DownloadParams: DownloadParamsSchema,
  DownloadQuery: DownloadQuerySchema,
  UpdateNotification: UpdateNotificationSchema,
  UpdateNotifyResponse: UpdateNotifyResponseSchema,
  DeploymentEvent: DeploymentEventSchema,
  DeploymentTarget: DeploymentTargetSchema,
  DeploymentStatus: DeploymentStatusSchema,
  DeploymentStatusResponse: DeploymentStatusResponseSchema,
  DeploymentStatusQuery: DeploymentStatusQuerySchema,
  DeploymentActionParams: DeploymentActionParamsSchema,
  DeploymentActionRequest: DeploymentActionRequestSchema,
  LatestChangelogResponse: LatestChangelogResponseSchema,
  AuditRecord: AuditRecordSchema,
  AuditSigners: AuditSignersSchema,
};
