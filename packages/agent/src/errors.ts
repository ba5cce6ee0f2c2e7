import { DroverError } from '@drover/protocol';
import { brandError } from '@drover/protocol/internal';

/** Codes `createAgent` and `agent.critical` throw (listed in docs/errors.md). */
export const agentErrorCodes = [
  'SERVICE_TOKEN_MISSING',
  'SERVICE_TOKEN_INVALID',
  'AGENT_OPTIONS_INVALID',
  'CRITICAL_SECTION_INVALID',
  'AGENT_SHUTTING_DOWN',
] as const;
/** A code an {@link AgentError} carries: one of {@link agentErrorCodes}. */
export type AgentErrorCode = (typeof agentErrorCodes)[number];

/** Codes the agent's routes answer with, in `{"error":{"code":...}}`, and the status each goes with. */
export const agentResponseCodes = {
  AUTH_REQUIRED: 401,
  AUTH_INVALID: 401,
  BODY_TOO_LARGE: 400,
  BODY_MALFORMED: 400,
  BODY_INVALID: 400,
  CONFIRM_REQUIRED: 400,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  REQUEST_TIMEOUT: 408,
  SHUTDOWN_IN_PROGRESS: 409,
  AGENT_BUSY: 503,
  INTERNAL_ERROR: 500,
} as const;
/** A code the agent's routes answer with: a key of {@link agentResponseCodes}. */
export type AgentResponseCode = keyof typeof agentResponseCodes;

/**
 * What `createAgent` and `agent.critical` throw: a stable `code`, and a message saying what to do.
 *
 * @example
 * ```ts
 * try { await agent.critical('job', run) } catch (error) {
 *   if (error instanceof AgentError && error.code === 'AGENT_SHUTTING_DOWN') return; // not started: the agent is draining
 * }
 * ```
 */
export class AgentError extends DroverError<AgentErrorCode> {
  override name = 'AgentError';
}
brandError(AgentError, 'AgentError');
