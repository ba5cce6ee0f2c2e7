import { limits } from '../config.js';
import { DaemonError } from '../errors.js';
import { boundedBackoff } from '../timing.js';
import type { UpdateRecord } from './journal.js';

// The time limits of an update command, read from the command and the journal so a restarted
// droverd keeps them. deadline: the manager gives up on a command at its deadline, so droverd does
// not start it, nor stop the agent for it, after that. busy agent: an agent that answers 503 defers
// the update, for at most the command's deferral window (docs/decisions/0012), which starts at the
// first deferral; past it the update is given up, never forced.

/** Throws UPDATE_DEADLINE_EXCEEDED once the command's deadline has passed. */
export function checkDeadline(update: UpdateRecord, now: number = Date.now()): void {
  if (now > Date.parse(update.command.deadline)) {
    throw new DaemonError('UPDATE_DEADLINE_EXCEEDED', `The update was not carried out before its deadline (${update.command.deadline}); the running version stays. The manager may send it again.`);
  }
}

/** When the command's deferral window ends (ms since the epoch); undefined: no window, or no deferral yet. */
export function deferralEnd(update: UpdateRecord): number | undefined {
  const window = update.command.deferralWindowSeconds;
  if (window === undefined || update.firstDeferredAt === undefined) return undefined;
  return Date.parse(update.firstDeferredAt) + window * 1000;
}

/** Throws DEFERRAL_WINDOW_EXPIRED once the agent stayed busy for the whole deferral window. */
export function checkDeferralWindow(update: UpdateRecord, now: number = Date.now()): void {
  const end = deferralEnd(update);
  if (end !== undefined && now >= end) {
    throw new DaemonError(
      'DEFERRAL_WINDOW_EXPIRED',
      `The agent stayed busy for the command's deferral window (${update.command.deferralWindowSeconds ?? 0} s from ${update.firstDeferredAt ?? 'its first deferral'}); it was not forced and the running version stays. The manager may send the update again in a quieter window.`,
    );
  }
}

/**
 * How long to wait before draining a busy agent again: a backoff over the deferrals, or the agent's
 * Retry-After when longer, within the operator's deferBackoffMaxSeconds (`maxMs`), and never past the
 * deadline or the window, so the drain after the last wait finds the window ended and gives up on time.
 */
export function deferredWaitMs(update: UpdateRecord, options: { maxMs: number; retryAfterMs: number | undefined }, now: number = Date.now()): number {
  const { maxMs } = options;
  const backoff = boundedBackoff(Math.max(0, update.deferrals - 1), Math.min(limits.deferBackoffBaseMs, maxMs), maxMs);
  const windowLeftMs = Math.max(0, (deferralEnd(update) ?? Number.POSITIVE_INFINITY) - now);
  return Math.min(maxMs, Math.max(backoff, options.retryAfterMs ?? 0), Math.max(0, Date.parse(update.command.deadline) - now) + 1, windowLeftMs);
}
