import { describe, expect, it } from 'vitest';
import { formatShutdownReason } from '@drover/protocol';
import { ManagerError } from '../errors.js';
import { refusalDetailOf, shutdownReason } from './push-client.js';
import { evaluateGate } from './gate.js';
import { defaultRolloutOptions, resolveRolloutOptions } from './options.js';
import { planPhases } from './phases.js';
import type { DeploymentRecord, RolloutCandidate, TargetView } from './records.js';
import { stepDaemonTarget } from './target-step.js';

const agents = (n: number, group?: RolloutCandidate['group']): RolloutCandidate[] =>
  Array.from({ length: n }, (_, i) => ({ id: `agent-${i}`, platform: 'linux-x64', agentVersion: '1.0.0', daemonVersion: '0.5.0', group, pushUrl: undefined }));

describe('phase planning', () => {
  it('percentages: ceil(10%), ceil(30%), the rest; stable per agent within a deployment, different across deployments', () => {
    const fleet = agents(100);
    const a = planPhases('canary', 'dep-1', fleet, [10, 30, 100]);
    const counts = [0, 1, 2].map((p) => [...a.phaseOf.values()].filter((x) => x === p).length);
    expect(counts).toEqual([10, 20, 70]);
    expect(planPhases('canary', 'dep-1', [...fleet].reverse(), [10, 30, 100]).phaseOf).toEqual(a.phaseOf);
    const b = planPhases('canary', 'dep-2', fleet, [10, 30, 100]);
    const firstA = [...a.phaseOf].filter(([, p]) => p === 0).map(([id]) => id);
    const firstB = [...b.phaseOf].filter(([, p]) => p === 0).map(([id]) => id);
    expect(firstA).not.toEqual(firstB);
    expect(a.phases.map((p) => p.name)).toEqual(['10%', '30%', '100%']);
  });

  it('groups when any agent has one (none = general); immediate is one phase', () => {
    const fleet = [...agents(1, 'explorer'), ...agents(2, 'early_adopter').map((x) => ({ ...x, id: `${x.id}-e` })), ...agents(3).map((x) => ({ ...x, id: `${x.id}-g` }))];
    const plan = planPhases('canary', 'dep-1', fleet, [10, 30, 100]);
    expect(plan.phases.map((p) => p.name)).toEqual(['explorers', 'early_adopters', 'general']);
    expect([0, 1, 2].map((p) => [...plan.phaseOf.values()].filter((x) => x === p).length)).toEqual([1, 2, 3]);
    expect(planPhases('immediate', 'dep-1', fleet, [10, 30, 100]).phases).toEqual([{ name: 'all' }]);
  });
});

describe('phase gate', () => {
  it('fails early on too many failures, passes only once every target ended with enough successes', () => {
    const options = { minHealthyRatio: 0.8, maxFailures: 1 };
    expect(evaluateGate({ succeeded: 3, updating: 1 }, options).verdict).toBe('open');
    expect(evaluateGate({ failed: 2, updating: 5 }, options).verdict).toBe('failed');
    expect(evaluateGate({ succeeded: 4, failed: 1 }, options).verdict).toBe('passed');
    expect(evaluateGate({ succeeded: 3, failed: 1, skipped: 1 }, { minHealthyRatio: 0.8, maxFailures: 1 }).verdict).toBe('failed');
    expect(evaluateGate({ skipped: 3 }, options).verdict).toBe('passed');
  });
});

describe('rollout options', () => {
  it('overrides defaults and refuses bad options with ROLLOUT_OPTIONS_INVALID', () => {
    expect(resolveRolloutOptions({ soakSeconds: 1 }).soakSeconds).toBe(1);
    for (const bad of [{ percentages: [50, 30, 100] }, { percentages: [10, 50] }, { maxInFlight: 0 }, { unknown: 1 }]) {
      try {
        resolveRolloutOptions(bad);
        expect.unreachable();
      } catch (error) {
        expect(error).toBeInstanceOf(ManagerError);
        expect((error as ManagerError).code).toBe('ROLLOUT_OPTIONS_INVALID');
      }
    }
  });
});

describe('shutdown reason', () => {
  it('is formatShutdownReason output, shortened to 4096 characters by dropping changelog lines only', () => {
    const input = { version: '1.2.3', deploymentId: 'abc123', changelog: 'fix: memory leak in telemetry service\nfeat: add new monitoring endpoint\ntest: improve coverage' };
    expect(shutdownReason(input)).toBe(formatShutdownReason(input));
    const long = { ...input, changelog: Array.from({ length: 1000 }, (_, i) => `fix: change ${i}`).join('\n') };
    const text = shutdownReason(long);
    expect(text.length).toBeLessThanOrEqual(4096);
    expect(text.startsWith('System shutdown requested: Runtime: CD update to version v1.2.3 (deployment abc123)\nRelease notes:\n  • fix: change 0\n')).toBe(true);
    expect(text.endsWith('more changes not shown)\n(API shutdown by wa-system-admin)')).toBe(true);
  });
});

describe('a daemon-mode target whose daemon gave up', () => {
  const t0 = new Date('2026-01-01T00:00:00Z');
  const deployment = { id: 'dep-1', options: defaultRolloutOptions } as DeploymentRecord;
  // Deferred 10 s ago: the manager's own window (3600 s) is far from over.
  const view = (detail: { code: string }): TargetView => ({
    deploymentId: 'dep-1', agentId: 'agent-1', phase: 0, state: 'deferred', mode: 'daemon', fromVersion: '1.0.0', toVersion: '2.0.0', attempts: 1,
    commandId: 'cmd-1', rollbackCommandId: undefined, rollbackState: undefined, notifiedAt: t0, deadlineAt: new Date(t0.getTime() + 7_200_000),
    deferredCount: 1, firstDeferredAt: t0, deferredUntil: undefined, healthySince: undefined, lastProbeAt: undefined, errorCode: undefined,
    message: undefined, updatedAt: t0, agentVersion: '1.0.0', agentHealth: undefined, lastCheckinAt: t0, agentUpdate: undefined, pushUrl: undefined, agentRevoked: false,
    command: { ackedAt: t0, outcome: 'failed', detail }, rollbackCommand: undefined,
  });
  const now = new Date(t0.getTime() + 10_000);

  it('at the end of the deferral window the command carried: failed DEFERRAL_WINDOW_EXPIRED, audited as agent_failed with that code', () => {
    const step = stepDaemonTarget(view({ code: 'DEFERRAL_WINDOW_EXPIRED' }), deployment, now, 60_000);
    expect(step?.next).toMatchObject({ state: 'failed', errorCode: 'DEFERRAL_WINDOW_EXPIRED' });
    expect(step?.decision).toMatchObject({ event: 'agent_failed', details: { code: 'DEFERRAL_WINDOW_EXPIRED', previousState: 'deferred' } });
  });

  it('for any other reason: failed UPDATE_FAILED, naming the daemon code in the message', () => {
    const step = stepDaemonTarget(view({ code: 'UPDATE_DEADLINE_EXCEEDED' }), deployment, now, 60_000);
    expect(step?.next).toMatchObject({ state: 'failed', errorCode: 'UPDATE_FAILED' });
    expect(step?.next.message).toContain('UPDATE_DEADLINE_EXCEEDED');
  });
});

describe("a daemon-mode target deferred past the engine's own window (the backstop)", () => {
  const t0 = new Date('2026-01-01T00:00:00Z');
  const deployment = { id: 'dep-1', options: { ...defaultRolloutOptions, deferralWindowSeconds: 600 } } as DeploymentRecord;
  const stale = 60_000;
  const at = (ms: number): Date => new Date(t0.getTime() + ms);
  const view = (state: TargetView['state'], agentUpdate: TargetView['agentUpdate']): TargetView => ({
    deploymentId: 'dep-1', agentId: 'agent-1', phase: 0, state, mode: 'daemon', fromVersion: '1.0.0', toVersion: '2.0.0', attempts: 1,
    commandId: 'cmd-1', rollbackCommandId: undefined, rollbackState: undefined, notifiedAt: t0, deadlineAt: at(7_200_000),
    deferredCount: 1, firstDeferredAt: t0, deferredUntil: undefined, healthySince: undefined, lastProbeAt: undefined, errorCode: undefined,
    message: undefined, updatedAt: t0, agentVersion: '1.0.0', agentHealth: undefined, lastCheckinAt: t0, agentUpdate, pushUrl: undefined, agentRevoked: false,
    command: { ackedAt: t0, outcome: 'deferred', detail: { code: 'AGENT_BUSY' } }, rollbackCommand: undefined,
  });

  it('waits one stale interval past the window for the daemon to report, then fails DEFERRAL_WINDOW_EXPIRED', () => {
    const still = view('deferred', { commandId: 'cmd-1', step: 'deferred' });
    expect(stepDaemonTarget(still, deployment, at(600_000), stale)).toBeUndefined();
    expect(stepDaemonTarget(still, deployment, at(660_000 - 1), stale)).toBeUndefined();
    expect(stepDaemonTarget(still, deployment, at(660_000), stale)?.next).toMatchObject({ state: 'failed', errorCode: 'DEFERRAL_WINDOW_EXPIRED' });
    // A daemon that reports no update, or another command's, is judged by the window alone.
    expect(stepDaemonTarget(view('deferred', undefined), deployment, at(660_000), stale)?.next.state).toBe('failed');
    expect(stepDaemonTarget(view('deferred', { commandId: 'cmd-0', step: 'health_check' }), deployment, at(660_000), stale)?.next.state).toBe('failed');
  });

  it("is not failed while the daemon reports its drain accepted: it moves to updating and stays there, whatever the window says", () => {
    const step = stepDaemonTarget(view('deferred', { commandId: 'cmd-1', step: 'health_check' }), deployment, at(700_000), stale);
    expect(step?.next).toMatchObject({ state: 'updating', deferredCount: 1 });
    expect(step?.decision).toMatchObject({ event: 'agent_accepted' });
    expect(stepDaemonTarget(view('updating', { commandId: 'cmd-1', step: 'committed' }), deployment, at(900_000), stale)).toBeUndefined();
    // Its progress gone before its outcome came (a refused result, a lost journal): still updating, not deferred again.
    expect(stepDaemonTarget(view('updating', undefined), deployment, at(900_000), stale)).toBeUndefined();
    // Still draining at a recent check-in (the answer not in yet): no verdict from the backstop either...
    const draining = view('deferred', { commandId: 'cmd-1', step: 'draining' });
    expect(stepDaemonTarget({ ...draining, lastCheckinAt: at(690_000) }, deployment, at(700_000), stale)).toBeUndefined();
    // ...but a droverd silent since it said so is failed by the backstop.
    expect(stepDaemonTarget({ ...draining, lastCheckinAt: at(600_000) }, deployment, at(700_000), stale)?.next).toMatchObject({ state: 'failed', errorCode: 'DEFERRAL_WINDOW_EXPIRED' });
    // The command's deadline still bounds it.
    expect(stepDaemonTarget(view('updating', { commandId: 'cmd-1', step: 'health_check' }), deployment, at(7_200_000), stale)?.next).toMatchObject({ state: 'failed', errorCode: 'TARGET_DEADLINE_EXCEEDED' });
  });

  it('then ends by the outcome droverd reports: succeeded moves it to health_check, rolled_back fails it', () => {
    const updating = view('updating', undefined);
    const succeeded = stepDaemonTarget({ ...updating, command: { ackedAt: t0, outcome: 'succeeded', detail: {} } }, deployment, at(900_000), stale);
    expect(succeeded?.next).toMatchObject({ state: 'health_check' });
    const rolledBack = stepDaemonTarget({ ...updating, command: { ackedAt: t0, outcome: 'rolled_back', detail: { code: 'HEALTH_CHECK_FAILED' } } }, deployment, at(900_000), stale);
    expect(rolledBack?.next).toMatchObject({ state: 'failed', errorCode: 'HOST_ROLLED_BACK' });
    expect(rolledBack?.next.message).toContain('saw it fail (HEALTH_CHECK_FAILED)');
    expect(rolledBack?.decision).toMatchObject({ event: 'agent_failed', message: rolledBack?.next.message, details: { code: 'HOST_ROLLED_BACK' } });
  });

  it('a first deferral after the command was acked (updating, never deferred) still moves it to deferred', () => {
    const acked = { ...view('updating', { commandId: 'cmd-1', step: 'deferred' }), deferredCount: 0, firstDeferredAt: undefined };
    const step = stepDaemonTarget(acked, deployment, at(10_000), stale);
    expect(step?.next).toMatchObject({ state: 'deferred', deferredCount: 1, firstDeferredAt: at(10_000) });
    expect(step?.decision).toMatchObject({ event: 'agent_deferred' });
  });
});

describe("a push-mode agent's refusal in the target's message", () => {
  it("names drover's error code, else quotes the agent's own detail (FastAPI's, as the real CIRIS agent answers), bounded and without control characters", () => {
    expect(refusalDetailOf({ error: { code: 'AGENT_BUSY', message: 'later' } })).toBe('AGENT_BUSY');
    expect(refusalDetailOf({ detail: 'Shutdown not confirmed' })).toBe('"Shutdown not confirmed"');
    expect(refusalDetailOf({ detail: [{ loc: ['body', 'reason'], msg: 'Field required', type: 'missing' }] })).toBe('"Field required"');
    expect(refusalDetailOf({ detail: 'a\nb\u0007c' })).toBe('"a b c"');
    expect(refusalDetailOf({ detail: 'x'.repeat(500) })).toBe(`"${'x'.repeat(200)}..."`);
    for (const body of [undefined, null, {}, { detail: '' }, { detail: 42 }, 'text']) expect(refusalDetailOf(body)).toBe('none');
  });
});
