import { describe, expect, it } from 'vitest';
import { expectError } from '../../../test/helpers/expect-error.js';
import { DaemonError } from '../errors.js';
import { checkDeadline, checkDeferralWindow, deferralEnd, deferredWaitMs } from './deadlines.js';
import type { UpdateRecord } from './journal.js';

const t0 = Date.parse('2026-12-01T10:00:00.000Z');

function record(command: { deadlineMs: number; windowSeconds?: number }, deferral?: { firstAtMs: number; deferrals: number }): UpdateRecord {
  return {
    commandId: 'c1',
    command: {
      id: 'c1',
      type: 'update',
      artifact: 'agent',
      release: { payloadType: 'application/vnd.drover.release+json', payload: 'e30=', signatures: [] },
      url: '/v1/download/agent/2.0.0/linux-x64',
      nonce: 'n',
      force: false,
      drainTimeoutSeconds: 30,
      deadline: new Date(command.deadlineMs).toISOString(),
      ...(command.windowSeconds === undefined ? {} : { deferralWindowSeconds: command.windowSeconds }),
    },
    artifact: 'agent',
    step: 'deferred',
    fromVersion: '1.0.0',
    resumes: 0,
    deferrals: deferral?.deferrals ?? 0,
    ...(deferral === undefined ? {} : { firstDeferredAt: new Date(deferral.firstAtMs).toISOString() }),
    receivedAt: new Date(t0).toISOString(),
    stepAt: new Date(t0).toISOString(),
  };
}

describe("an update command's time limits", () => {
  it('refuses to go on once the deadline has passed (UPDATE_DEADLINE_EXCEEDED), not at it', () => {
    const update = record({ deadlineMs: t0 + 60_000 });
    checkDeadline(update, t0 + 60_000);
    expectError(() => {
      checkDeadline(update, t0 + 60_001);
    }, DaemonError, 'UPDATE_DEADLINE_EXCEEDED');
  });

  it('starts the deferral window at the first deferral, and gives up at its end (DEFERRAL_WINDOW_EXPIRED)', () => {
    expect(deferralEnd(record({ deadlineMs: t0 + 3_600_000, windowSeconds: 600 }))).toBeUndefined();
    expect(deferralEnd(record({ deadlineMs: t0 + 3_600_000 }, { firstAtMs: t0, deferrals: 1 }))).toBeUndefined();
    const update = record({ deadlineMs: t0 + 3_600_000, windowSeconds: 600 }, { firstAtMs: t0, deferrals: 1 });
    expect(deferralEnd(update)).toBe(t0 + 600_000);
    checkDeferralWindow(update, t0 + 599_999);
    expectError(() => {
      checkDeferralWindow(update, t0 + 600_000);
    }, DaemonError, 'DEFERRAL_WINDOW_EXPIRED');
  });

  it("waits for the agent's Retry-After, but never past the operator's maximum, the window or the deadline", () => {
    const roomy = record({ deadlineMs: t0 + 3_600_000, windowSeconds: 3_600 }, { firstAtMs: t0, deferrals: 1 });
    expect(deferredWaitMs(roomy, { maxMs: 300_000, retryAfterMs: 120_000 }, t0)).toBe(120_000);
    expect(deferredWaitMs(roomy, { maxMs: 60_000, retryAfterMs: 120_000 }, t0)).toBe(60_000);
    const windowEnding = record({ deadlineMs: t0 + 3_600_000, windowSeconds: 600 }, { firstAtMs: t0, deferrals: 1 });
    expect(deferredWaitMs(windowEnding, { maxMs: 300_000, retryAfterMs: 120_000 }, t0 + 590_000)).toBe(10_000);
    const deadlineNear = record({ deadlineMs: t0 + 5_000 }, { firstAtMs: t0, deferrals: 1 });
    expect(deferredWaitMs(deadlineNear, { maxMs: 300_000, retryAfterMs: 120_000 }, t0)).toBe(5_001);
  });
});
