import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import { dateTime, literalUnion, ResponseText, VersionSchema } from './common.js';

// The agent's own endpoints (CIRIS-compatible): POST /v1/system/shutdown, GET /v1/system/health,
// called by droverd and the manager with Bearer service:<token>.

export const CriticalSectionName = Type.String({ minLength: 1, maxLength: 256, description: "A critical section's name, as the agent's code named it." });

/** Body of `POST /v1/system/shutdown` to an agent, authorised by `Bearer service:<token>`. */
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
/** Body of a shutdown request; see {@link ShutdownRequestSchema}. */
export type ShutdownRequest = Static<typeof ShutdownRequestSchema>;

/** 200 from `POST /v1/system/shutdown`: the agent drains in-flight work, then exits 0. */
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
/** 200 from a shutdown request; see {@link ShutdownResponseSchema}. */
export type ShutdownResponse = Static<typeof ShutdownResponseSchema>;

/** 503 from `POST /v1/system/shutdown` while a critical section runs (with `Retry-After`): the caller defers. */
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
/** 503 from a busy agent; see {@link AgentBusyErrorSchema}. */
export type AgentBusyError = Static<typeof AgentBusyErrorSchema>;

/** The statuses an agent reports on `GET /v1/system/health`. */
export const agentHealthStatuses = ['healthy', 'degraded', 'starting'] as const;
/** An agent's health status: one of {@link agentHealthStatuses}. */
export type AgentHealthStatus = (typeof agentHealthStatuses)[number];

/** `GET /v1/system/health` of an agent: status, version, and whether a critical section runs. */
export const AgentHealthSchema = Type.Object(
  {
    status: literalUnion(agentHealthStatuses),
    version: VersionSchema,
    busy: Type.Boolean({ description: 'True while any critical section runs: a shutdown now would get 503.' }),
  },
  { $id: 'AgentHealth', description: 'GET /v1/system/health.' },
);
/** An agent's health answer; see {@link AgentHealthSchema}. */
export type AgentHealth = Static<typeof AgentHealthSchema>;

/** The statuses the real CIRIS agent reports (CIRISAgent `determine_overall_status`). */
export const cirisAgentHealthStatuses = ['healthy', 'degraded', 'critical', 'initializing'] as const;

/**
 * `GET /v1/system/health` as the real CIRIS agent answers it (CIRISAgent 2bd11fcb,
 * `SuccessResponse[SystemHealthResponse]`): the report inside `data`, no `busy`, and a cognitive
 * state. The second form droverd and push mode accept (docs/decisions/0035-ciris-agent-health.md);
 * fields drover does not read (uptime, services, warnings, metadata) are allowed and ignored.
 */
export const CirisAgentHealthSchema = Type.Object(
  {
    data: Type.Object(
      {
        status: literalUnion(cirisAgentHealthStatuses),
        version: VersionSchema,
        cognitive_state: Type.Optional(Type.Union([Type.String({ maxLength: 64 }), Type.Null()], { description: 'e.g. WAKEUP, WORK; healthy only in WORK (compared case-insensitively).' })),
        degraded_mode: Type.Optional(Type.Boolean({ description: 'True when the agent runs without a working LLM provider: not healthy.' })),
        busy: Type.Optional(Type.Boolean({ description: 'Not sent by the real agent; absent means not busy.' })),
      },
      { additionalProperties: true },
    ),
    metadata: Type.Optional(Type.Object({}, { additionalProperties: true })),
  },
  { $id: 'CirisAgentHealth', description: 'GET /v1/system/health as the real CIRIS agent answers it (the envelope form).', additionalProperties: true },
);
/** The real CIRIS agent's health answer; see {@link CirisAgentHealthSchema}. */
export type CirisAgentHealth = Static<typeof CirisAgentHealthSchema>;
