// The one retry policy of drover's outbound HTTP (docs/decisions/0015-one-http-layer.md):
// - which requests: only those a second copy cannot harm: GET, HEAD, OPTIONS, PUT, DELETE (RFC 9110
//   9.2.2), a request carrying an Idempotency-Key, or one its caller declares idempotent;
// - which failures: network errors and timeouts, 408, 429 and 5xx, never another 4xx (a refusal does
//   not change by asking again);
// - how long: exponential backoff with full jitter, so a fleet does not retry in step; at least a
//   Retry-After the peer sent, up to a cap, so a peer cannot park a client for hours, plus a random
//   part of up to half of it, so clients told the same Retry-After at once do not return at once.

/** When and how long the client waits before another attempt. */
export interface RetryPolicy {
  /** Attempts of one request in all, the first included (1: never retried). */
  maxAttempts: number;
  /** ms: the first retry waits up to this; doubles with each attempt. */
  backoffBaseMs: number;
  /** ms: the longest backoff between two attempts. */
  backoffMaxMs: number;
  /** ms: a Retry-After beyond this is cut to it. */
  retryAfterMaxMs: number;
}

/** Four attempts; jittered backoff from 250 ms up to 10 s; a Retry-After honoured up to 60 s. */
export const defaultRetryPolicy: RetryPolicy = {
  maxAttempts: 4,
  backoffBaseMs: 250,
  backoffMaxMs: 10_000,
  retryAfterMaxMs: 60_000,
};

const IDEMPOTENT_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);

/** Failures that say nothing about the request itself: the network, or a peer too slow to answer. */
const NETWORK_ERROR_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ENETDOWN',
  'ENETUNREACH',
  'EHOSTDOWN',
  'EHOSTUNREACH',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
]);

/** True when an HTTP status is worth another attempt: 408, 429 and 5xx. */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || (status >= 500 && status <= 599);
}

/** True for an error of the network or a timeout (the error's code, or its cause's). */
export function isNetworkError(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  const causeCode = (error as { cause?: { code?: unknown } } | undefined)?.cause?.code;
  return (typeof code === 'string' && NETWORK_ERROR_CODES.has(code)) || (typeof causeCode === 'string' && NETWORK_ERROR_CODES.has(causeCode));
}

/**
 * True when sending the request twice does no harm: an idempotent method, an Idempotency-Key header,
 * or the caller's word (`idempotent: true`, for a POST the server treats as idempotent).
 */
export function isRepeatable(method: string, headers: Record<string, string> | undefined, idempotent: boolean | undefined): boolean {
  if (idempotent !== undefined) return idempotent;
  if (IDEMPOTENT_METHODS.has(method.toUpperCase())) return true;
  return Object.keys(headers ?? {}).some((name) => name.toLowerCase() === 'idempotency-key');
}

/** Parses Retry-After (seconds, or an HTTP date) into ms; undefined when absent or malformed. */
export function parseRetryAfter(value: string | string[] | undefined, now: number = Date.now()): number | undefined {
  const text = (Array.isArray(value) ? value[0] : value)?.trim();
  if (text === undefined || text === '') return undefined;
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** Exponential backoff with full jitter: uniform in [0, min(max, base * 2^attempt)). attempt counts from 0. */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}

/**
 * ms to wait before attempt `attempt + 1` (attempt counts from 0): the jittered backoff, or, when
 * longer, the peer's Retry-After (capped at `retryAfterMaxMs`) plus a random part of up to half of it.
 */
export function retryDelay(policy: RetryPolicy, attempt: number, retryAfter: string | string[] | undefined, random: () => number = Math.random): number {
  const backoff = backoffDelay(attempt, policy.backoffBaseMs, policy.backoffMaxMs, random);
  const asked = parseRetryAfter(retryAfter);
  if (asked === undefined) return backoff;
  // What the peer asked (up to the cap) plus up to half as much again at random: a fleet that an
  // overloaded manager tells "5 s" all at once comes back over 5 to 7.5 s, not in one wave.
  const floor = Math.min(asked, policy.retryAfterMaxMs);
  return Math.max(backoff, floor + Math.floor((random() * floor) / 2));
}
