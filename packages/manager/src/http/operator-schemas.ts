import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import { ReleasePayloadSchema, agentHealthStatuses } from '@drover/protocol';
import { AgentIdSchema, ArtifactSchema, DeploymentIdSchema, PlatformSchema, VersionSchema, literalUnion } from '@drover/protocol/internal';
import { managerLimits } from '../config.js';

// Schemas of the manager's operator API (the CLI, CI pipelines): publishing releases, enrollment
// tokens, the agent list, queueing a command. The daemon-facing wire schemas live in
// @drover/protocol; these are the manager's own. Requests refuse unknown fields, like the wire's.

export const PublishReleaseRequestSchema = Type.Object(
  {
    // Checked by parseEnvelope and the trust policy, not here, so that anything that is not a
    // verifiable envelope is refused with the protocol's release code (RELEASE_MALFORMED, ...).
    release: Type.Unknown({ description: 'The DSSE envelope written by `drover release sign` (FILE.release.json).' }),
  },
  { $id: 'PublishReleaseRequest', additionalProperties: false, description: 'POST /v1/releases, with an admin or deploy token.' },
);
export type PublishReleaseRequest = Static<typeof PublishReleaseRequestSchema>;

export const PublishReleaseResponseSchema = Type.Object(
  {
    status: Type.Union([Type.Literal('published'), Type.Literal('awaiting_upload')]),
    created: Type.Boolean({ description: 'False when this exact envelope was registered before.' }),
    uploadUrl: Type.Union([Type.String(), Type.Null()], { description: 'PUT the artifact bytes here (application/octet-stream) while awaiting_upload.' }),
    manifest: ReleasePayloadSchema,
  },
  { $id: 'PublishReleaseResponse' },
);
export type PublishReleaseResponse = Static<typeof PublishReleaseResponseSchema>;

export const UploadParamsSchema = Type.Object(
  { artifact: ArtifactSchema, version: Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9][A-Za-z0-9.+_-]*$' }), platform: PlatformSchema },
  { $id: 'UploadParams', additionalProperties: false },
);

export const ReleaseQuerySchema = Type.Object({ platform: Type.Optional(PlatformSchema) }, { $id: 'ReleaseQuery', additionalProperties: false });

export const ListReleasesQuerySchema = Type.Object(
  {
    artifact: ArtifactSchema,
    platform: Type.Optional(PlatformSchema),
    channel: Type.Optional(Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9][A-Za-z0-9._+-]*$' })),
    state: Type.Optional(Type.Union([Type.Literal('pending'), Type.Literal('published')])),
  },
  { $id: 'ListReleasesQuery', additionalProperties: false, description: 'GET /v1/releases: the releases of one artifact, newest version first.' },
);

/** One release in a listing: what it is, its bytes, who signed it, when it expires. */
export interface ReleaseListItem {
  artifact: string;
  version: string;
  platform: string;
  channel: string;
  state: 'pending' | 'published';
  file: { name: string; size: number; sha256: string };
  /** The key ids of the envelope's signatures. */
  signers: string[];
  expiresAt: string;
  publishedAt: string | null;
  publishedBy: string;
}

export const ListDeploymentsQuerySchema = Type.Object(
  {
    limit: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,3}$', description: 'At most this many (default 20, at most 1000).' })),
    active: Type.Optional(Type.Union([Type.Literal('true'), Type.Literal('false')], { description: 'true: only pending, in_progress, paused and rolling_back ones.' })),
  },
  { $id: 'ListDeploymentsQuery', additionalProperties: false },
);

/** One deployment in a listing (GET /v1/deployments). */
export interface DeploymentListItem {
  deploymentId: string;
  artifact: string;
  version: string;
  strategy: string;
  status: string;
  /** 1-based phase and the number of phases. */
  phase: number;
  phases: number;
  /** Each phase's name, in order (`explorers`..., `10%`..., `all`). */
  phaseNames: string[];
  phaseState: string;
  /** While the phase soaks: when the soak ends and the next phase may start. */
  soakUntil: string | null;
  message: string;
  createdBy: string;
  createdAt: string;
  completedAt: string | null;
}

export const CreateEnrollmentTokenRequestSchema = Type.Object(
  {
    seats: Type.Optional(Type.Integer({ minimum: 1, maximum: managerLimits.enrollmentTokenMaxSeats, description: 'Enrollments allowed (default 1).' })),
    expiresInSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: managerLimits.enrollmentTokenMaxTtlSeconds, description: 'seconds (default 86400)' })),
    note: Type.Optional(Type.String({ maxLength: 256, pattern: '^[^\\u0000-\\u001f]*$', description: 'What the token is for; shown in listings and the audit log.' })),
  },
  { $id: 'CreateEnrollmentTokenRequest', additionalProperties: false, description: 'POST /v1/enrollment-tokens, admin token.' },
);
export type CreateEnrollmentTokenRequest = Static<typeof CreateEnrollmentTokenRequestSchema>;

export const EnrollmentTokenSchema = Type.Object({
  tokenId: Type.String(),
  seats: Type.Integer(),
  used: Type.Integer(),
  createdAt: Type.String(),
  expiresAt: Type.String(),
  revokedAt: Type.Union([Type.String(), Type.Null()]),
  createdBy: Type.String(),
  note: Type.Union([Type.String(), Type.Null()]),
});
export type EnrollmentTokenView = Static<typeof EnrollmentTokenSchema>;

export const TokenIdParamsSchema = Type.Object({ tokenId: Type.String({ pattern: '^[0-9a-f]{16}$' }) }, { additionalProperties: false });

export const AgentParamsSchema = Type.Object({ agentId: AgentIdSchema }, { additionalProperties: false });

const RolloutGroupSchema = Type.Union([Type.Literal('explorer'), Type.Literal('early_adopter'), Type.Literal('general')]);

export const ListAgentsQuerySchema = Type.Object(
  {
    limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,4}$', description: `at most ${managerLimits.listAgentsMax}` })),
    after: Type.Optional(AgentIdSchema),
    q: Type.Optional(
      Type.String({ maxLength: managerLimits.agentSearchMaxChars, description: 'A case-insensitive substring of the agent id, machine id, hostname, agent or daemon version (`%` and `_` taken literally).' }),
    ),
    group: Type.Optional(RolloutGroupSchema),
    version: Type.Optional(VersionSchema),
    health: Type.Optional(literalUnion(agentHealthStatuses)),
  },
  { $id: 'ListAgentsQuery', additionalProperties: false, description: 'Filters combine (all must hold); `total` in the answer counts the agents the filters take.' },
);

export const AgentViewSchema = Type.Object({
  agentId: AgentIdSchema,
  machineId: Type.String(),
  hostname: Type.String(),
  platform: Type.String(),
  arch: Type.String(),
  agentVersion: Type.String(),
  daemonVersion: Type.String(),
  enrolledAt: Type.String(),
  credentialIssuedAt: Type.String(),
  lastCheckinAt: Type.Union([Type.String(), Type.Null()]),
  health: Type.Union([Type.Unknown(), Type.Null()]),
  update: Type.Union([Type.Unknown(), Type.Null()]),
  /** When an operator removed the host (`drover agents remove`), else null. */
  revokedAt: Type.Union([Type.String(), Type.Null()]),
});
export type AgentView = Static<typeof AgentViewSchema>;

/** A host in the fleet listing (GET /v1/agents): its view, its canary group and its pending command. */
export interface FleetAgentView extends AgentView {
  /** Its canary group (explorer, early_adopter, general), or null. */
  group: string | null;
  /** Its oldest unacked command (the next its daemon carries out), or null. */
  pendingCommand: { id: string; type: string; deploymentId: string | null; createdAt: string; deliveredCount: number } | null;
}

export const QueueUpdateRequestSchema = Type.Object(
  {
    deploymentId: Type.Optional(DeploymentIdSchema),
    artifact: Type.Union([Type.Literal('agent'), Type.Literal('daemon')]),
    version: VersionSchema,
    platform: Type.Optional(PlatformSchema),
    rollback: Type.Optional(Type.Boolean()),
    force: Type.Optional(Type.Boolean()),
    drainTimeoutSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 86400 })),
    deadlineSeconds: Type.Optional(Type.Integer({ minimum: 60, maximum: 7 * 86400 })),
  },
  { $id: 'QueueUpdateRequest', additionalProperties: false, description: 'POST /v1/agents/{agentId}/commands, admin token: queue a signed update command.' },
);
export type QueueUpdateRequest = Static<typeof QueueUpdateRequestSchema>;

export const AgentRolloutRequestSchema = Type.Object(
  {
    group: Type.Optional(
      Type.Union([Type.Literal('explorer'), Type.Literal('early_adopter'), Type.Literal('general'), Type.Null()], {
        description: 'The canary group (explorer -> early_adopter -> general); null: none (the agent is general when groups are used).',
      }),
    ),
    pushUrl: Type.Optional(
      Type.Union([Type.String({ minLength: 1, maxLength: 2048 }), Type.Null()], {
        description: "Push mode (no daemon): the agent's base URL; the manager calls its POST /v1/system/shutdown. null: daemon mode.",
      }),
    ),
  },
  { $id: 'AgentRolloutRequest', additionalProperties: false, description: 'PUT /v1/agents/{agentId}/rollout, with an admin token. A field left out keeps its value.' },
);
export type AgentRolloutRequest = Static<typeof AgentRolloutRequestSchema>;


export const AgentImportRequestSchema = Type.Object(
  {
    source: Type.Literal('ciris-registry'),
    registrySha256: Type.String({ pattern: '^[0-9a-f]{64}$', description: 'SHA-256 of the registry file read, recorded in the audit log.' }),
    agents: Type.Array(
      Type.Object(
        {
          agentId: AgentIdSchema,
          name: Type.String({ minLength: 1, maxLength: 256 }),
          pushUrl: Type.String({ minLength: 1, maxLength: 2048 }),
          // Printable ASCII without spaces: what an Authorization header can carry as is.
          serviceToken: Type.String({ minLength: 16, maxLength: 512, pattern: '^[\\x21-\\x7e]+$' }),
          group: Type.Optional(RolloutGroupSchema),
          agentVersion: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
        },
        { additionalProperties: false },
      ),
      { minItems: 1, maxItems: managerLimits.importAgentsMax },
    ),
  },
  { $id: 'AgentImportRequest', additionalProperties: false, description: 'POST /v1/agents/import, admin token: agents another manager created, as push-mode agents (all or none).' },
);
export type AgentImportRequestBody = Static<typeof AgentImportRequestSchema>;

export const DeploymentEventsQuerySchema = Type.Object(
  { deployment_id: Type.Optional(DeploymentIdSchema) },
  { $id: 'DeploymentEventsQuery', additionalProperties: false, description: 'Query of GET /manager/v1/updates/events (server-sent events).' },
);
export type DeploymentEventsQuery = Static<typeof DeploymentEventsQuerySchema>;

export const ChangelogQuerySchema = Type.Object({ artifact: Type.Optional(Type.Union([Type.Literal('agent'), Type.Literal('daemon')])) }, { $id: 'ChangelogQuery', additionalProperties: false });
