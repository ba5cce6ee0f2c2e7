import { AgentHealthSchema, CirisAgentHealthSchema } from './schemas/agent-endpoints.js';
import type { AgentHealthStatus } from './schemas/agent-endpoints.js';
import { matchesSchema } from './validate.js';

// An agent's health answer, read the same way by droverd's health gate and the manager's push-mode
// probe (docs/decisions/0035-ciris-agent-health.md). Two forms: drover's agent SDK answers flat
// (AgentHealth); the real CIRIS agent answers inside its response envelope (CirisAgentHealth), with
// no `busy`, its own statuses and a cognitive state. Both are turned into drover's vocabulary.

/** An agent's health, in drover's terms, whichever form the agent answered in. */
export interface AgentHealthReading {
  /** drover's status: `healthy` only when the agent is ready for work at `version`. */
  status: AgentHealthStatus;
  version: string;
  /** From the answer; false when the agent does not say (the real CIRIS agent never does). */
  busy: boolean;
  /** What the agent said, for messages: its own status and, when present, its cognitive state. */
  reported: string;
}

const WORK = 'work';

/** Reads a health answer in either form; undefined when it is neither. */
export function readAgentHealth(body: unknown): AgentHealthReading | undefined {
  if (matchesSchema(AgentHealthSchema, body)) return { status: body.status, version: body.version, busy: body.busy, reported: body.status };
  const flat = body as { status?: unknown; version?: unknown; busy?: unknown } | null;
  // drover's flat form without `busy` (absent = not busy).
  if (typeof flat === 'object' && flat !== null && !('data' in flat) && flat.busy === undefined) {
    const withBusy = { ...flat, busy: false };
    if (matchesSchema(AgentHealthSchema, withBusy)) return { status: withBusy.status, version: withBusy.version, busy: false, reported: withBusy.status };
  }
  if (!matchesSchema(CirisAgentHealthSchema, body)) return undefined;
  const data = body.data;
  const cognitive = typeof data.cognitive_state === 'string' ? data.cognitive_state : undefined;
  const reported = cognitive === undefined ? data.status : `${data.status}, cognitive state ${cognitive}`;
  return { status: cirisStatus(data.status, cognitive, data.degraded_mode === true), version: data.version, busy: data.busy === true, reported };
}

/**
 * The real agent's status in drover's terms: `healthy` only in the WORK cognitive state (when it
 * reports one) and not in degraded mode; `initializing`, and a healthy agent still waking up, is
 * `starting` (keep waiting); `critical`, `degraded`, WAKEUP_ERROR and degraded mode are `degraded`.
 */
function cirisStatus(status: string, cognitive: string | undefined, degradedMode: boolean): AgentHealthStatus {
  if (status === 'initializing') return 'starting';
  if (status !== 'healthy' || degradedMode) return 'degraded';
  if (cognitive === undefined || cognitive.toLowerCase() === WORK) return 'healthy';
  return cognitive.toLowerCase() === 'wakeup_error' ? 'degraded' : 'starting';
}
