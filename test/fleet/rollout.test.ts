// The rollout engine against a simulated fleet that speaks the real check-in protocol over HTTP
// to a real manager on 127.0.0.1:0. Short soak, grace and windows (per deployment, through
// metadata.rollout) and fast check-ins keep each scenario to a few seconds.
import { afterEach, describe, expect, it } from 'vitest';
import type { DeploymentStatus } from '@drover/protocol';
import { startTestManager } from '../../packages/manager/test/harness.js';
import type { TestManager } from '../../packages/manager/test/harness.js';
import { FleetSimulator, waitFor } from './fleet-simulator.js';
import type { HostBehaviour } from './fleet-simulator.js';

let manager: TestManager | undefined;
let fleet: FleetSimulator | undefined;

afterEach(async () => {
  await fleet?.close();
  await manager?.close();
  fleet = undefined;
  manager = undefined;
});

const fast = { soakSeconds: 0.3, healthGraceSeconds: 0.2, deferralWindowSeconds: 10, targetDeadlineSeconds: 10, deferralBackoffSeconds: 0.05 };

async function setup(behaviours: HostBehaviour[], simulator: { checkinEveryMs?: number; channelWaitSeconds?: number; tickMs?: number } = {}): Promise<{ m: TestManager; f: FleetSimulator }> {
  const m = await startTestManager({ rollout: { tickMs: simulator.tickMs ?? 40 } });
  manager = m;
  await m.publish({ version: '1.0.0' });
  await m.publish({ version: '2.0.0' });
  const f = new FleetSimulator(m.url, { checkinEveryMs: simulator.checkinEveryMs ?? 30, ...(simulator.channelWaitSeconds !== undefined ? { channelWaitSeconds: simulator.channelWaitSeconds } : {}) });
  fleet = f;
  await f.enroll(await m.createEnrollmentToken(behaviours.length), behaviours);
  f.start();
  return { m, f };
}

async function notify(m: TestManager, body: Record<string, unknown>): Promise<string> {
  const res = await m.request('POST', '/manager/v1/updates/notify', { headers: { authorization: `Bearer ${m.deployToken}` }, json: body });
  expect(res.status, res.text).toBe(200);
  return (res.json as { deployment_id: string }).deployment_id;
}

async function status(m: TestManager, id: string): Promise<DeploymentStatus> {
  const res = await m.request('GET', `/manager/v1/updates/status?deployment_id=${id}`, { headers: { authorization: `Bearer ${m.adminToken}` } });
  expect(res.status, res.text).toBe(200);
  return res.json as DeploymentStatus;
}

async function until(m: TestManager, id: string, done: (s: DeploymentStatus) => boolean, timeoutMs = 20_000): Promise<DeploymentStatus> {
  return waitFor(`deployment ${id}`, async () => {
    const s = await status(m, id);
    return done(s) ? s : undefined;
  }, timeoutMs);
}

const ended = (s: DeploymentStatus): boolean => s.completed_at !== null;

function eventTimes(s: DeploymentStatus, type: string): number[] {
  return s.events.filter((e) => e.event_type === type).map((e) => Date.parse(e.timestamp));
}

describe('rollout engine with a simulated fleet', () => {
  it('a three-phase canary passes, each phase starting only after the previous gate passed and soaked', async () => {
    const { m, f } = await setup(Array.from({ length: 10 }, () => ({})));
    const id = await notify(m, { version: '2.0.0', strategy: 'canary', metadata: { rollout: fast } });
    const s = await until(m, id, ended);
    expect(s.status).toBe('completed');
    expect(s.agents_updated).toBe(10);
    expect(s.agents_failed).toBe(0);
    expect(Object.keys(s.canary_assignments ?? {})).toEqual(['10%', '30%', '100%']);
    expect(Object.values(s.canary_assignments ?? {}).map((a) => a.length)).toEqual([1, 2, 7]);
    expect(f.hosts.every((h) => h.version === '2.0.0')).toBe(true);
    // Each phase starts only after the previous gate passed and its soak elapsed.
    const passed = eventTimes(s, 'phase_passed');
    const started = eventTimes(s, 'phase_started');
    expect(passed).toHaveLength(3);
    expect(started).toHaveLength(2);
    for (let i = 0; i < 2; i++) expect((started[i] ?? 0) - (passed[i] ?? 0)).toBeGreaterThanOrEqual(fast.soakSeconds * 1000);
    // No agent of a phase got its command before the previous phase's gate passed.
    const phaseOf = new Map(s.agents.map((a) => [a.agent_id, a.phase]));
    for (const host of f.hosts) {
      expect(host.received.filter((c) => c.deploymentId === id)).toHaveLength(1);
      expect(host.received.every((c) => c.verified)).toBe(true);
    }
    expect(phaseOf.size).toBe(10);
    const audit = await m.auditRecords();
    expect(audit.filter((r) => r.event === 'deployment.phase_passed')).toHaveLength(3);
    expect(audit.filter((r) => r.event === 'deployment.agent_accepted' && r.deploymentId === id)).toHaveLength(10);
    expect(audit.some((r) => r.event === 'deployment.completed' && r.deploymentId === id)).toBe(true);
    expect((await m.verifyAudit()).ok).toBe(true);
    expect(await m.leakedSecrets()).toEqual([]);
  });

  it('a release unhealthy in the first phase fails its gate; later phases never start; its agents are rolled back with signed commands', async () => {
    const { m, f } = await setup(Array.from({ length: 10 }, () => ({ unhealthyOn: ['2.0.0'] })));
    const id = await notify(m, { version: '2.0.0', metadata: { rollout: { ...fast, targetDeadlineSeconds: 1.5, percentages: [20, 50, 100] } } });
    const s = await until(m, id, ended);
    expect(s.status).toBe('failed');
    expect(s.events.some((e) => e.event_type === 'gate_failed')).toBe(true);
    expect(s.events.some((e) => e.event_type === 'phase_started')).toBe(false);
    const first = s.agents.filter((a) => a.phase === '20%');
    expect(first).toHaveLength(2);
    expect(first.every((a) => a.state === 'rolled_back')).toBe(true);
    expect(s.agents.filter((a) => a.phase !== '20%').every((a) => a.state === 'skipped')).toBe(true);
    for (const host of f.hosts) {
      const mine = host.received.filter((c) => c.deploymentId === id);
      if (first.some((a) => a.agent_id === host.agentId)) {
        expect(mine.map((c) => [c.toVersion, c.rollback, c.verified])).toEqual([
          ['2.0.0', false, true],
          ['1.0.0', true, true],
        ]);
        expect(host.version).toBe('1.0.0');
      } else {
        expect(mine).toEqual([]);
        expect(host.version).toBe('1.0.0');
      }
    }
    const audit = await m.auditRecords();
    expect(audit.some((r) => r.event === 'deployment.gate_failed' && r.deploymentId === id)).toBe(true);
    expect(audit.filter((r) => r.event === 'command.queued' && r.details['rollback'] === true)).toHaveLength(2);
  });

  it('30% busy for a while: the rollout completes once they are free, nobody is forced, agents_deferred counts them; one busy past the window fails', async () => {
    const behaviours: HostBehaviour[] = [...Array.from({ length: 7 }, () => ({})), ...Array.from({ length: 3 }, () => ({ busyForMs: 1500 }))];
    const { m, f } = await setup(behaviours);
    const id = await notify(m, { version: '2.0.0', strategy: 'immediate', metadata: { rollout: fast } });
    const s = await until(m, id, ended);
    expect(s.status).toBe('completed');
    expect(s.agents_updated).toBe(10);
    expect(s.agents_deferred).toBe(3);
    expect(f.hosts.reduce((n, h) => n + h.forced, 0)).toBe(0);
    const audit = await m.auditRecords();
    expect(audit.filter((r) => r.event === 'deployment.agent_deferred' && r.deploymentId === id).length).toBe(3);

    // A host busy past the deferral window ends failed (and is still not forced).
    const [late] = await f.enroll(await m.createEnrollmentToken(1), [{ busyForMs: 60_000 }], '2.0.0');
    if (late === undefined) throw new Error('no host');
    late.version = '1.0.0';
    late.start(() => f.pool, 30);
    const id2 = await notify(m, { version: '2.0.0', strategy: 'immediate', metadata: { rollout: { ...fast, deferralWindowSeconds: 0.8, maxFailures: 1, minHealthyRatio: 0 } } });
    const s2 = await until(m, id2, ended);
    const target = s2.agents.find((a) => a.agent_id === late.agentId);
    expect(target?.state).toBe('failed');
    expect(target?.error?.code).toBe('DEFERRAL_WINDOW_EXPIRED');
    expect(late.forced).toBe(0);
    expect(late.version).toBe('1.0.0');
    // The command carried the window, and the host's daemon gave up with it too: it will not update later.
    await waitFor('the late host to give up', () => late.received.find((c) => c.deploymentId === id2)?.gaveUpWith, 5_000);
    expect(late.received.find((c) => c.deploymentId === id2)?.gaveUpWith).toBe('DEFERRAL_WINDOW_EXPIRED');
  });

  it('maxInFlight 1 updates one host at a time; an offline host fails at its deadline, a slow one still succeeds', async () => {
    const { m, f } = await setup([{}, {}, { offline: true }, { installMs: 400, checkinEveryMs: 120 }]);
    const id = await notify(m, { version: '2.0.0', strategy: 'immediate', metadata: { rollout: { ...fast, maxInFlight: 1, targetDeadlineSeconds: 2, maxFailures: 1, minHealthyRatio: 0.5 } } });
    const s = await until(m, id, ended);
    expect(s.status).toBe('completed');
    const offline = f.hosts[2]?.agentId;
    const slow = f.hosts[3]?.agentId;
    expect(s.agents.find((a) => a.agent_id === offline)?.error?.code).toBe('TARGET_DEADLINE_EXCEEDED');
    expect(s.agents.find((a) => a.agent_id === slow)?.state).toBe('succeeded');
    expect(s.agents_updated).toBe(3);
    // One at a time: no host got its command before the previous one had installed (the offline one held its slot until its deadline).
    const timeline = f.hosts.flatMap((h) => h.received.filter((c) => c.deploymentId === id)).sort((a, b) => a.receivedAt - b.receivedAt);
    expect(timeline).toHaveLength(3);
    for (let i = 1; i < timeline.length; i++) expect(timeline[i]?.receivedAt ?? 0).toBeGreaterThanOrEqual(timeline[i - 1]?.installedAt ?? Number.POSITIVE_INFINITY);
  });

  it('manual waits for promote before each phase', async () => {
    const { m, f } = await setup(Array.from({ length: 4 }, () => ({})));
    const id = await notify(m, { version: '2.0.0', strategy: 'manual', metadata: { rollout: { ...fast, percentages: [50, 100] } } });
    // Ten check-ins per host (several engine ticks): nothing starts without a promote.
    await f.checkInRounds(10);
    let s = await status(m, id);
    expect(s.status).toBe('pending');
    expect(s.agents.every((a) => a.state === 'pending')).toBe(true);
    expect(f.hosts.every((h) => h.received.length === 0)).toBe(true);
    const promote = (): Promise<unknown> => m.request('POST', `/manager/v1/updates/${id}/promote`, { headers: { authorization: `Bearer ${m.adminToken}` } });
    expect(((await promote()) as { status: number }).status).toBe(200);
    s = await until(m, id, (x) => x.events.some((e) => e.event_type === 'phase_awaiting_promote'));
    await f.checkInRounds(10);
    s = await status(m, id);
    expect(s.agents.filter((a) => a.state === 'succeeded')).toHaveLength(2);
    expect(s.agents.filter((a) => a.state === 'pending')).toHaveLength(2);
    expect(((await promote()) as { status: number }).status).toBe(200);
    s = await until(m, id, ended);
    expect(s.status).toBe('completed');
    expect(s.agents_updated).toBe(4);
    // The deploy token may not steer a deployment.
    const denied = await m.request('POST', `/manager/v1/updates/${id}/pause`, { headers: { authorization: `Bearer ${m.deployToken}` } });
    expect(denied.status).toBe(403);
  });

  it('abort keeps done hosts done and never starts queued ones', async () => {
    const { m, f } = await setup(Array.from({ length: 10 }, () => ({})));
    const id = await notify(m, { version: '2.0.0', metadata: { rollout: { ...fast, soakSeconds: 30 } } });
    await until(m, id, (x) => x.events.some((e) => e.event_type === 'phase_passed'));
    const res = await m.request('POST', `/manager/v1/updates/${id}/abort`, { headers: { authorization: `Bearer ${m.adminToken}` }, json: { reason: 'test' } });
    expect(res.status, res.text).toBe(200);
    const s = await until(m, id, ended);
    expect(s.status).toBe('cancelled');
    expect(s.agents.filter((a) => a.state === 'succeeded')).toHaveLength(1);
    expect(s.agents.filter((a) => a.state === 'skipped')).toHaveLength(9);
    // Every host checks in again several times after the abort: none of the skipped ones gets a command.
    await f.checkInRounds(10);
    expect(f.hosts.filter((h) => h.received.length > 0)).toHaveLength(1);
    expect(f.hosts.filter((h) => h.version === '2.0.0')).toHaveLength(1);
    // Only one active deployment per artifact: a second notify gets 409 unless it supersedes.
    const id2 = await notify(m, { version: '2.0.0', metadata: { rollout: { ...fast, soakSeconds: 30 } } });
    const second = await m.request('POST', '/manager/v1/updates/notify', { headers: { authorization: `Bearer ${m.deployToken}` }, json: { version: '2.0.0' } });
    expect([second.status, (second.json as { error: { code: string } }).error.code]).toEqual([409, 'DEPLOYMENT_ACTIVE']);
    const third = await notify(m, { version: '2.0.0', supersede: true });
    expect((await status(m, id2)).status).toBe('cancelled');
    expect(third).not.toBe(id2);
  });

  it('abort withdraws a command no check-in handed out yet: the host that was away never takes it', async () => {
    // Host 2 is away (no check-in) when every host is sent its command; the others take theirs.
    const { m, f } = await setup([{}, {}, { offline: true }]);
    const id = await notify(m, { version: '2.0.0', strategy: 'immediate', metadata: { rollout: { ...fast, maxInFlight: 3 } } });
    await until(m, id, (x) => x.agents.filter((a) => a.state === 'succeeded').length === 2);
    const away = f.hosts[2];
    if (away === undefined) throw new Error('no host 2');
    expect((await status(m, id)).agents.find((a) => a.agent_id === away.agentId)?.state).toBe('notified');
    const res = await m.request('POST', `/manager/v1/updates/${id}/abort`, { headers: { authorization: `Bearer ${m.adminToken}` }, json: { reason: 'test' } });
    expect(res.status, res.text).toBe(200);
    // Closed at once, not at the away host's deadline: its target never started.
    const s = await until(m, id, ended, 5_000);
    expect(s.status).toBe('cancelled');
    expect(s.agents.find((a) => a.agent_id === away.agentId)?.state).toBe('skipped');
    // Back, it checks in: no command comes, and it stays on 1.0.0.
    expect(await away.checkIn(f.pool)).toBe(true);
    expect(away.received).toEqual([]);
    expect(away.version).toBe('1.0.0');
    const view = await m.request('GET', `/v1/agents/${away.agentId}`, { headers: { authorization: `Bearer ${m.adminToken}` } });
    expect((view.json as { commands: { outcome: string | null; deliveredCount: number }[] }).commands).toMatchObject([{ outcome: 'withdrawn', deliveredCount: 0 }]);
    // The hosts that took theirs are done and stay done.
    expect(f.hosts.filter((h) => h.version === '2.0.0')).toHaveLength(2);
  });

  it('canary by operator groups, then an operator rollback sends every updated agent a signed rollback command', async () => {
    const { m, f } = await setup(Array.from({ length: 6 }, () => ({})));
    const groups = ['explorer', 'early_adopter', 'early_adopter', 'general', undefined, undefined];
    for (const [i, host] of f.hosts.entries()) {
      const group = groups[i];
      if (group === undefined) continue;
      const res = await m.request('PUT', `/v1/agents/${host.agentId}/rollout`, { headers: { authorization: `Bearer ${m.adminToken}` }, json: { group } });
      expect(res.status, res.text).toBe(200);
    }
    const bad = await m.request('PUT', `/v1/agents/${f.hosts[0]?.agentId ?? ''}/rollout`, { headers: { authorization: `Bearer ${m.adminToken}` }, json: { pushUrl: 'ftp://user:pw@host' } });
    expect([bad.status, (bad.json as { error: { code: string } }).error.code]).toEqual([400, 'PUSH_URL_INVALID']);
    const id = await notify(m, { version: '2.0.0', metadata: { rollout: fast } });
    const s = await until(m, id, ended);
    expect(s.status).toBe('completed');
    expect(Object.fromEntries(Object.entries(s.canary_assignments ?? {}).map(([k, v]) => [k, v.length]))).toEqual({ explorers: 1, early_adopters: 2, general: 3 });
    const explorer = f.hosts[0]?.agentId;
    expect(s.agents.find((a) => a.agent_id === explorer)?.phase).toBe('explorers');
    const res = await m.request('POST', `/manager/v1/updates/${id}/rollback`, { headers: { authorization: `Bearer ${m.adminToken}` }, json: { reason: 'bad numbers' } });
    expect(res.status, res.text).toBe(200);
    const back = await until(m, id, (x) => x.status === 'rolled_back' && ended(x));
    expect(back.agents.every((a) => a.state === 'rolled_back')).toBe(true);
    for (const host of f.hosts) {
      expect(host.version).toBe('1.0.0');
      expect(host.received.filter((c) => c.deploymentId === id).map((c) => [c.toVersion, c.rollback, c.verified])).toEqual([
        ['2.0.0', false, true],
        ['1.0.0', true, true],
      ]);
    }
    const again = await m.request('POST', `/manager/v1/updates/${id}/rollback`, { headers: { authorization: `Bearer ${m.adminToken}` } });
    expect([again.status, (again.json as { error: { code: string } }).error.code]).toEqual([409, 'DEPLOYMENT_ACTION_INVALID']);
    const audit = await m.auditRecords();
    expect(audit.some((r) => r.event === 'deployment.rollback' && r.deploymentId === id && r.details['reason'] === 'bad numbers')).toBe(true);
    expect(audit.filter((r) => r.event === 'agent.rollout_settings')).toHaveLength(4);
  });

  describe('on the command channel (check-ins held; an interval and an engine tick of a minute)', () => {
    const minute = { checkinEveryMs: 60_000, channelWaitSeconds: 30, tickMs: 60_000 };
    /** Every host has sent its first check-in, which the manager holds (no command yet). */
    const held = async (f: FleetSimulator): Promise<void> => {
      await waitFor('every host to check in', () => (f.hosts.every((h) => h.sent >= 1) ? true : undefined), 10_000);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(f.hosts.every((h) => h.checkins === 0)).toBe(true);
    };

    it('a three-phase canary over 30 hosts completes in seconds: commands, results and gate decisions move the next hosts at once', async () => {
      const { m, f } = await setup(Array.from({ length: 30 }, () => ({})), minute);
      await held(f);
      const started = Date.now();
      const id = await notify(m, { version: '2.0.0', metadata: { rollout: { percentages: [10, 30, 100], soakSeconds: 0, healthGraceSeconds: 0 } } });
      const s = await until(m, id, ended, 20_000);
      const seconds = (Date.now() - started) / 1000;
      expect(s.status).toBe('completed');
      expect(s.agents_updated).toBe(30);
      // Neither an interval nor a tick (a minute each) passed: only events moved it.
      expect(seconds).toBeLessThan(15);
      // One command per host, each verified; none forced.
      for (const host of f.hosts) expect(host.received.map((c) => [c.deploymentId, c.verified])).toEqual([[id, true]]);
      expect(f.hosts.reduce((n, h) => n + h.forced, 0)).toBe(0);
      console.info(`channel rollout of 30 hosts: ${seconds.toFixed(2)} s`);
    });

    it('pause stops hosts that have not started, resume moves them at once; abort never starts the rest', async () => {
      const { m, f } = await setup(Array.from({ length: 10 }, () => ({})), minute);
      await held(f);
      const admin = { authorization: `Bearer ${m.adminToken}` };
      // Phase 1 (1 host) passes its gate, then soaks 2 s: paused meanwhile, phase 2 must not start.
      const id = await notify(m, { version: '2.0.0', metadata: { rollout: { percentages: [10, 50, 100], soakSeconds: 2, healthGraceSeconds: 0 } } });
      await until(m, id, (x) => x.events.some((e) => e.event_type === 'phase_passed'), 10_000);
      expect((await m.request('POST', `/manager/v1/updates/${id}/pause`, { headers: admin })).status).toBe(200);
      await new Promise((resolve) => setTimeout(resolve, 3_500));
      expect(f.hosts.filter((h) => h.received.length > 0)).toHaveLength(1);
      expect((await status(m, id)).status).toBe('paused');
      // Resumed: phase 2's hosts get their commands at once (not at a tick or an interval a minute away).
      const resumedAt = Date.now();
      expect((await m.request('POST', `/manager/v1/updates/${id}/resume`, { headers: admin })).status).toBe(200);
      await waitFor('phase 2 to start', () => (f.hosts.filter((h) => h.received.length > 0).length >= 5 ? true : undefined), 10_000);
      const phase2 = f.hosts.flatMap((h) => h.received).filter((c) => c.receivedAt >= resumedAt);
      expect(Math.max(...phase2.map((c) => c.receivedAt)) - resumedAt).toBeLessThan(5_000);
      // Aborted during phase 2's soak: the last phase never starts.
      await until(m, id, (x) => x.events.filter((e) => e.event_type === 'phase_passed').length >= 2, 10_000);
      expect((await m.request('POST', `/manager/v1/updates/${id}/abort`, { headers: admin, json: { reason: 'test' } })).status).toBe(200);
      const s = await until(m, id, ended, 10_000);
      expect(s.status).toBe('cancelled');
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      expect(f.hosts.filter((h) => h.received.length > 0)).toHaveLength(5);
      expect(s.agents.filter((a) => a.state === 'skipped')).toHaveLength(5);
    });
  });

  it('notify with a wrong deploy token is 401, audited by token id only', async () => {
    const { m } = await setup([{}]);
    const res = await m.request('POST', '/manager/v1/updates/notify', { headers: { authorization: 'Bearer not-a-token-of-this-manager' }, json: { version: '2.0.0' } });
    expect([res.status, (res.json as { error: { code: string } }).error.code]).toEqual([401, 'AUTH_INVALID']);
    const changelog = await m.request('GET', '/manager/v1/updates/latest/changelog', { headers: { authorization: `Bearer ${m.deployToken}` } });
    expect(changelog.status).toBe(200);
    expect(changelog.json).toMatchObject({ version: '2.0.0', changelog: 'fix: a bug', latest: { changes: [{ type: 'fix', description: 'a bug' }] } });
    expect((await m.auditRecords()).some((r) => r.event === 'token.rejected')).toBe(true);
    expect(await m.leakedSecrets()).toEqual([]);
  });
});
