import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import { agentHealthStatuses, CriticalSectionName } from './agent-endpoints.js';
import { CommandIdSchema, dateTime, ErrorDetailSchema, AgentIdSchema, MachineIdSchema, literalUnion, VersionSchema, wireHeaders } from './common.js';
import { CommandResultSchema, CommandStubSchema, NonceTokenSchema } from './commands.js';
import { InventorySchema } from './enrollment.js';

// Check-in: POST /v1/agents/{agentId}/checkin, a daemon's periodic call: what it runs, how its agent
// is, what became of its commands; answered with the commands to run next.

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
/** A step of the daemon's update state machine: one of {@link updateSteps}. */
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

/** What a daemon runs, and the update it is carrying out, if any. */
export const DaemonStateSchema = Type.Object(
  {
    agentVersion: VersionSchema,
    daemonVersion: VersionSchema,
    update: Type.Optional(UpdateProgressSchema),
  },
  { $id: 'DaemonState', additionalProperties: false, description: 'What the daemon runs, and the update it is carrying out, if any.' },
);
/** A daemon's state; see {@link DaemonStateSchema}. */
export type DaemonState = Static<typeof DaemonStateSchema>;

/** What the daemon can say of its agent: the agent's own statuses, or that it could not get one. */
export const agentHealthReportStatuses = [...agentHealthStatuses, 'unreachable', 'stopped'] as const;
/** An agent's health as its daemon reports it: one of {@link agentHealthReportStatuses}. */
export type AgentHealthReportStatus = (typeof agentHealthReportStatuses)[number];

/** The agent's health as its daemon last read it, sent with each check-in. */
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
/** The agent's health as its daemon reports it; see {@link AgentHealthReportSchema}. */
export type AgentHealthReport = Static<typeof AgentHealthReportSchema>;

/** Body of `POST /v1/agents/{agentId}/checkin`: state, health, acks and results. */
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
/** Body of a check-in; see {@link CheckinRequestSchema}. */
export type CheckinRequest = Static<typeof CheckinRequestSchema>;

/** Headers of a check-in: the machine id, both versions, and the update nonce while an update runs. */
export const CheckinHeadersSchema = Type.Object(
  {
    [wireHeaders.machineId]: MachineIdSchema,
    [wireHeaders.agentVersion]: VersionSchema,
    [wireHeaders.daemonVersion]: VersionSchema,
    [wireHeaders.updateNonce]: Type.Optional(NonceTokenSchema),
    [wireHeaders.wait]: Type.Optional(
      Type.String({ pattern: '^[1-9][0-9]{0,3}$', description: 'Hold this check-in up to this many seconds (1-9999; the manager caps it) while there is no command for the agent: the command channel (decision 0041).' }),
    ),
  },
  { $id: 'CheckinHeaders', description: 'Headers of a check-in (other headers may be present).' },
);
/** Headers of a check-in, by their lower-case names; see {@link CheckinHeadersSchema}. */
export type CheckinHeaders = Static<typeof CheckinHeadersSchema>;

/** Path parameters of `POST /v1/agents/{agentId}/checkin`. */
export const CheckinParamsSchema = Type.Object({ agentId: AgentIdSchema }, { $id: 'CheckinParams', additionalProperties: false, description: 'Path parameters of POST /v1/agents/{agentId}/checkin.' });
/** Path parameters of a check-in; see {@link CheckinParamsSchema}. */
export type CheckinParams = Static<typeof CheckinParamsSchema>;

const checkinCommands = Type.Array(CommandStubSchema, { maxItems: 32, description: 'Re-sent on every check-in until acked.' });
const nextCheckinSeconds = Type.Integer({ minimum: 1, maximum: 86400 });

/** 200 from a check-in: the commands to run (re-sent until acked) and when to check in next. */
export const CheckinResponseSchema = Type.Object(
  { commands: checkinCommands, nextCheckinSeconds },
  { $id: 'CheckinResponse', description: '200 from a check-in.' },
);
/** 200 from a check-in; see {@link CheckinResponseSchema}. */
export type CheckinResponse = Static<typeof CheckinResponseSchema>;

/** 426 from a check-in (the agent is below the manager's minimum version), still carrying the commands. */
export const CheckinUpgradeRequiredSchema = Type.Object(
  { error: ErrorDetailSchema, commands: checkinCommands, nextCheckinSeconds },
  {
    $id: 'CheckinUpgradeRequired',
    description: "426 from a check-in: the agent's version is below the manager's minimum. The commands still come, so an old agent can always upgrade.",
  },
);
/** 426 from a check-in; see {@link CheckinUpgradeRequiredSchema}. */
export type CheckinUpgradeRequired = Static<typeof CheckinUpgradeRequiredSchema>;
