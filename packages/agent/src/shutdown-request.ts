import { sanitizeReason } from '@drover/protocol/internal';
import { errorResponse } from './response.js';
import type { AgentResponse } from './response.js';

/** A shutdown request the agent accepted (`POST /v1/system/shutdown` with `confirm: true`). */
export interface ShutdownRequest {
  /** The caller's reason, control characters already replaced by spaces. */
  reason: string;
  /** Skip the busy check, after a bounded drain of the critical sections running. */
  force: boolean;
}

export type ParsedShutdownRequest = { ok: true; request: ShutdownRequest } | { ok: false; response: AgentResponse };

const SHAPE = 'Send {"reason": string, "force"?: boolean, "confirm": true}.';
const utf8 = new TextDecoder('utf-8', { fatal: true });

function refuse(code: 'BODY_MALFORMED' | 'BODY_INVALID' | 'CONFIRM_REQUIRED', message: string): ParsedShutdownRequest {
  return { ok: false, response: errorResponse(code, message) };
}

// Validates a shutdown body: `{"reason": string, "force"?: boolean, "confirm": true}`; unknown
// fields are ignored (CIRIS sends none, others may).
export function parseShutdownRequest(body: Uint8Array | string | undefined): ParsedShutdownRequest {
  let text: string;
  try {
    text = typeof body === 'string' ? body : body === undefined ? '' : utf8.decode(body);
  } catch {
    return refuse('BODY_MALFORMED', `The body is not UTF-8 text. ${SHAPE}`);
  }
  if (text.trim() === '') return refuse('BODY_MALFORMED', `The body is empty. ${SHAPE}`);

  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return refuse('BODY_MALFORMED', `The body is not valid JSON. ${SHAPE}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return refuse('BODY_INVALID', `The body must be a JSON object. ${SHAPE}`);
  }
  const { reason, force, confirm } = value as Record<string, unknown>;
  if (typeof reason !== 'string') return refuse('BODY_INVALID', `"reason" must be a string. ${SHAPE}`);
  if (force !== undefined && typeof force !== 'boolean') return refuse('BODY_INVALID', `"force" must be a boolean when present. ${SHAPE}`);
  if (confirm !== undefined && typeof confirm !== 'boolean') return refuse('BODY_INVALID', `"confirm" must be a boolean. ${SHAPE}`);
  // An accidental or replayed-without-intent call must not stop the agent: it has to say so.
  if (confirm !== true) return refuse('CONFIRM_REQUIRED', `A shutdown needs "confirm": true. ${SHAPE}`);

  // log injection: control characters in the reason become spaces before it is logged or passed on.
  return { ok: true, request: { reason: sanitizeReason(reason), force: force === true } };
}
