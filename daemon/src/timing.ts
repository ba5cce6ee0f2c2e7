import { setTimeout as delay } from 'node:timers/promises';

// Waiting, backing off and jittering, in one place so every loop of the daemon waits the same way
// and can be stopped: every wait takes an AbortSignal and rejects with an AbortError on abort. The
// HTTP layer's backoff and Retry-After parsing are @drover/http's (backoffDelay, parseRetryAfter).

/** Sleeps `ms`, or rejects with an AbortError as soon as `signal` aborts. */
export async function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  await delay(Math.max(0, ms), undefined, signal === undefined ? undefined : { signal });
}

/** Exponential backoff without jitter below it: between half and all of min(max, base * 2^attempt). */
export function boundedBackoff(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(ceiling / 2 + (random() * ceiling) / 2);
}

/** `ms` moved by up to +-ratio, so a fleet spreads out instead of acting in lockstep. */
export function withJitter(ms: number, ratio: number, random: () => number = Math.random): number {
  return Math.max(0, Math.round(ms * (1 + ratio * (2 * random() - 1))));
}

/** True for the error an aborted wait or request rejects with. */
export function isAbortError(error: unknown): boolean {
  return error instanceof Error && (error.name === 'AbortError' || (error as { code?: unknown }).code === 'ABORT_ERR');
}
