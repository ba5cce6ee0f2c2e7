import { agentResponseCodes } from './errors.js';
import type { AgentResponseCode } from './errors.js';

/** A request as every adapter hands it to the core: what the transport read, nothing more. */
export interface AgentRequest {
  method: string;
  /** The path, without the query string (one is stripped if present). */
  path: string;
  headers: Readonly<Record<string, string | readonly string[] | undefined>>;
  /** The peer's address, for the log line of a refused request. */
  remoteAddress?: string | undefined;
  /** The body read so far, at most `limits.maxBodyBytes`; absent when there was none. */
  body?: Uint8Array | string | undefined;
  /** Set by the adapter when the body passed `limits.maxBodyBytes` and reading stopped. */
  bodyTooLarge?: boolean | undefined;
  /** Set by the adapter when the body did not arrive within `limits.bodyReadTimeoutMs`. */
  bodyTimedOut?: boolean | undefined;
}

/** What the core answers; adapters write it out as is. */
export interface AgentResponse {
  status: number;
  headers: Record<string, string>;
  /** JSON text. */
  body: string;
  /**
   * Set on the 200 that accepts a shutdown: the adapter calls it once the response has been
   * written, and only then does the agent call `onShutdown` and exit, so the 200 reaches the caller.
   * Idempotent; the agent also proceeds on its own after `limits.responseFlushFallbackMs`.
   */
  sent?: (() => void) | undefined;
}

const JSON_HEADERS = {
  'content-type': 'application/json; charset=utf-8',
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
} as const;

export function jsonResponse(status: number, value: unknown, headers: Record<string, string> = {}): AgentResponse {
  return { status, headers: { ...JSON_HEADERS, ...headers }, body: JSON.stringify(value) };
}

export function errorResponse(
  code: AgentResponseCode,
  message: string,
  options: { headers?: Record<string, string>; details?: Record<string, unknown> } = {},
): AgentResponse {
  return jsonResponse(agentResponseCodes[code], { error: { code, message, ...options.details } }, options.headers);
}
