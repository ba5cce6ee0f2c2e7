import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import { AgentIdSchema, ArtifactSchema, DeploymentIdSchema, dateTime, ErrorDetailSchema, literalUnion, nullable, ResponseText, VersionSchema } from './common.js';
import { DsseEnvelopeSchema } from './releases.js';

// The deploy API (CIRIS-compatible): POST /manager/v1/updates/notify, GET /manager/v1/updates/status,
// POST /manager/v1/updates/{deployment_id}/{action}, GET /manager/v1/updates/latest/changelog.

const Count = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });

/** How a deployment reaches its targets: canary phases, all at once, or phase by phase on `promote`. */
export const deploymentStrategies = ['canary', 'immediate', 'manual'] as const;
/** A deployment strategy: one of {@link deploymentStrategies}. */
export type DeploymentStrategy = (typeof deploymentStrategies)[number];
/** CIRIS's documented risk levels; a notification's `risk_level` may be any string, recorded as given. */
export const riskLevels = ['low', 'medium', 'high', 'unknown'] as const;
/** A risk level: one of {@link riskLevels}. */
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
/** A deployment's status: one of {@link deploymentStatuses}. */
export type DeploymentStatusValue = (typeof deploymentStatuses)[number];
/** Where one target of a rollout stands: `pending -> notified -> [deferred] -> updating -> health_check`, then an end. */
export const rolloutTargetStates = ['pending', 'notified', 'deferred', 'updating', 'health_check', 'succeeded', 'failed', 'skipped', 'rolled_back'] as const;
/** Where one target of a rollout stands: one of {@link rolloutTargetStates}. */
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
/** Body of `POST /manager/v1/updates/notify`: CIRIS's UpdateNotification plus drover's `artifact`, `release` and `supersede`. */
export const UpdateNotificationSchema = Type.Object(
  {
    agent_image: Type.Optional(nullable(ImageReference)),
    gui_image: Type.Optional(nullable(ImageReference)),
    nginx_image: Type.Optional(nullable(ImageReference)),
    version: Type.Optional(nullable(Type.String({ maxLength: 128, description: 'Semantic version if available' }))),
    // CIRISManager's model takes any string here (docs/ciris-compat.md N4); only 6-40 hex is used as a commit.
    commit_sha: Type.Optional(nullable(Type.String({ maxLength: 128, description: 'Git commit SHA; recorded as given, used only when it is 6-40 hex.' }))),
    changelog: Type.Optional(nullable(Type.String({ maxLength: 65536, description: 'Release notes: one entry a line.' }))),
    // Free strings, as in the model CIRISManager's notify route uses (docs/ciris-compat.md N2, N3): recorded as given.
    risk_level: Type.Optional(nullable(Type.String({ maxLength: 64, description: 'Risk assessment (CIRIS: low, medium, high, unknown); recorded as given, not acted on.' }), { default: 'unknown' })),
    strategy: Type.Optional(
      Type.String({ maxLength: 64, default: 'canary', description: 'canary, immediate or manual; any other string is recorded as given and rolled out as canary, as CIRISManager does.' }),
    ),
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
    description:
      "POST /manager/v1/updates/notify, Authorization: Bearer <deploy token>: CIRIS's UpdateNotification plus drover's artifact (default agent), release (the signed release to roll out; omitted, the manager takes artifact at version from its catalog) and supersede. Fields it does not name are ignored, as CIRISManager's model ignores them. Beyond this schema the server requires a version or a signed release.",
  },
);
/** An update notification; see {@link UpdateNotificationSchema}. */
export type UpdateNotification = Static<typeof UpdateNotificationSchema>;

/** 200 from `POST /manager/v1/updates/notify`: the deployment id and how many agents it affects. */
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
/** 200 from a notify; see {@link UpdateNotifyResponseSchema}. */
export type UpdateNotifyResponse = Static<typeof UpdateNotifyResponseSchema>;

/** One event of a deployment's timeline (CIRIS's DeploymentEvent). */
export const DeploymentEventSchema = Type.Object(
  {
    timestamp: dateTime(),
    event_type: Type.String({ minLength: 1, maxLength: 64, description: 'e.g. started, phase_started, agent_updated, agent_deferred, completed, failed' }),
    message: ResponseText,
    details: Type.Optional(nullable(Type.Record(Type.String(), Type.Unknown()))),
  },
  { $id: 'DeploymentEvent', description: "One event of a deployment's timeline (CIRIS's DeploymentEvent)." },
);
/** One event of a deployment's timeline; see {@link DeploymentEventSchema}. */
export type DeploymentEvent = Static<typeof DeploymentEventSchema>;

/** Where one agent stands in a deployment (drover's addition to CIRIS's status). */
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
/** One agent of a deployment; see {@link DeploymentTargetSchema}. */
export type DeploymentTarget = Static<typeof DeploymentTargetSchema>;

/** A deployment: CIRIS's DeploymentStatus fields plus drover's per-agent states. */
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
/** A deployment's status; see {@link DeploymentStatusSchema}. */
export type DeploymentStatus = Static<typeof DeploymentStatusSchema>;

/** `GET /manager/v1/updates/status`: a deployment, or null when none is named and none is active. */
export const DeploymentStatusResponseSchema = Type.Union([DeploymentStatusSchema, Type.Null()], {
  $id: 'DeploymentStatusResponse',
  description: 'GET /manager/v1/updates/status[?deployment_id=]: null when no id is given and no deployment is active (as CIRIS answers).',
});
/** A status answer; see {@link DeploymentStatusResponseSchema}. */
export type DeploymentStatusResponse = Static<typeof DeploymentStatusResponseSchema>;

/** Query of `GET /manager/v1/updates/status`. */
export const DeploymentStatusQuerySchema = Type.Object(
  { deployment_id: Type.Optional(DeploymentIdSchema) },
  { $id: 'DeploymentStatusQuery', additionalProperties: false, description: 'Query of GET /manager/v1/updates/status.' },
);
/** Query of a status request; see {@link DeploymentStatusQuerySchema}. */
export type DeploymentStatusQuery = Static<typeof DeploymentStatusQuerySchema>;

/** What an operator can do to a running deployment. */
export const deploymentActions = ['pause', 'resume', 'abort', 'promote', 'rollback'] as const;
/** A deployment action: one of {@link deploymentActions}. */
export type DeploymentAction = (typeof deploymentActions)[number];

/** Path parameters of `POST /manager/v1/updates/{deployment_id}/{action}`. */
export const DeploymentActionParamsSchema = Type.Object(
  { deployment_id: DeploymentIdSchema, action: literalUnion(deploymentActions) },
  {
    $id: 'DeploymentActionParams',
    additionalProperties: false,
    description: 'Path parameters of POST /manager/v1/updates/{deployment_id}/{action}, with an admin token; answered with DeploymentStatus.',
  },
);
/** Path parameters of a deployment action; see {@link DeploymentActionParamsSchema}. */
export type DeploymentActionParams = Static<typeof DeploymentActionParamsSchema>;

/** Body of a deployment action: an optional reason, recorded in the audit log. */
export const DeploymentActionRequestSchema = Type.Object(
  { reason: Type.Optional(Type.String({ maxLength: 1024, description: 'Recorded in the audit log and the deployment events.' })) },
  { $id: 'DeploymentActionRequest', additionalProperties: false, description: 'Body of a deployment action; an empty body means {}.' },
);
/** Body of a deployment action; see {@link DeploymentActionRequestSchema}. */
export type DeploymentActionRequest = Static<typeof DeploymentActionRequestSchema>;

/** `GET /manager/v1/updates/latest/changelog`: the latest release's changelog, raw and as CIRIS's `latest.changes`. */
export const LatestChangelogResponseSchema = Type.Object(
  {
    artifact: ArtifactSchema,
    version: nullable(VersionSchema, { description: 'null when no release of the artifact is published yet.' }),
    commit_sha: nullable(Type.String({ pattern: '^[0-9a-f]{6,40}$' })),
    released_at: nullable(dateTime()),
    changelog: ResponseText,
    latest: Type.Object({
      version: nullable(VersionSchema),
      date: nullable(Type.String({ maxLength: 64, description: 'YYYY-MM-DD' })),
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
    description:
      "GET /manager/v1/updates/latest/changelog: the latest release's changelog, raw and as CIRIS's latest.changes list; with no release published, 200 with version null and no changes.",
  },
);
/** The latest changelog; see {@link LatestChangelogResponseSchema}. */
export type LatestChangelogResponse = Static<typeof LatestChangelogResponseSchema>;
