// The rollout engine on an injected clock, ticked by hand: grace periods and soaks are decided by
// stored timestamps against the clock alone, and a manager restarted mid-soak picks the soak up
// from the store (no timer survives a restart; none needs to).
import { afterEach, describe, expect, it } from 'vitest';
import type { UpdateCommand } from '@drover/protocol';
import { checkinBody, commandsOf, startTestManager } from './harness.js';
import type { EnrolledAgent, TestManager } from './harness.js';

let manager: TestManager | undefined;
afterEach(async () => {
  await manager?.close();
  manager = undefined;
});

describe('rollout engine timers', () => {
  it('counts grace and soak on the injected clock, and resumes a soak after a restart', async () => {
    let clock = Date.now();
    let m = await startTestManager({ now: () => new Date(clock), rollout: { autoStart: false } });
    manager = m;
    await m.publish({ version: '1.0.0' });
    await m.publish({ version: '2.0.0' });
    const agents: EnrolledAgent[] = [await m.enroll(), await m.enroll()];
    const res = await m.request('POST', '/manager/v1/updates/notify', {
      headers: { authorization: `Bearer ${m.deployToken}` },
      json: { version: '2.0.0', metadata: { rollout: { percentages: [50, 100], soakSeconds: 600, healthGraceSeconds: 60 } } },
    });
    expect(res.status, res.text).toBe(200);
    const id = (res.json as { deployment_id: string }).deployment_id;
    const deployment = async (): Promise<{ phaseIndex: number; phaseState: string; status: string }> => {
      const d = await m.app.manager.context.store.getDeployment(id);
      if (d === undefined) throw new Error('gone');
      return d;
    };
    await m.app.manager.rollouts.tick();
    // The first phase's agent got its command; drive it like a daemon would.
    let first: EnrolledAgent | undefined;
    let command: UpdateCommand | undefined;
    for (const agent of agents) {
      const commands = commandsOf(await m.checkin(agent)) as UpdateCommand[];
      if (commands.length > 0) [first, command] = [agent, commands[0]];
    }
    if (first === undefined || command === undefined) throw new Error('no command went out');
    const done = await m.checkin(first, { agentVersion: '2.0.0', body: checkinBody('2.0.0', '0.5.0', { acks: [command.id], results: [{ commandId: command.id, outcome: 'succeeded', detail: {}, nonce: command.nonce }] }) });
    expect(done.status).toBe(200);
    await m.app.manager.rollouts.tick();
    expect((await m.app.manager.context.store.listTargets(id)).find((t) => t.agentId === first.agentId)?.state).toBe('health_check');
    clock += 59_000;
    await m.checkin(first, { agentVersion: '2.0.0' });
    await m.app.manager.rollouts.tick();
    expect((await m.app.manager.context.store.listTargets(id)).find((t) => t.agentId === first.agentId)?.state).toBe('health_check');
    clock += 2_000;
    await m.checkin(first, { agentVersion: '2.0.0' });
    await m.app.manager.rollouts.tick();
    expect(await deployment()).toMatchObject({ phaseIndex: 0, phaseState: 'soaking' });

    // Restart mid-soak: the soak's end is a stored time.
    m = await m.restart();
    manager = m;
    clock += 599_000;
    await m.app.manager.rollouts.tick();
    expect(await deployment()).toMatchObject({ phaseIndex: 0, phaseState: 'soaking' });
    clock += 2_000;
    await m.app.manager.rollouts.tick();
    expect(await deployment()).toMatchObject({ phaseIndex: 1, phaseState: 'rolling', status: 'in_progress' });
    await m.app.manager.rollouts.tick();
    const second = agents.find((a) => a !== first);
    if (second === undefined) throw new Error('no second agent');
    const [secondCommand] = commandsOf(await m.checkin(second)) as UpdateCommand[];
    if (secondCommand === undefined) throw new Error('no command for the second agent');

    // Pausing twice is one pause: the second answers the status, changes and records nothing.
    const pause = (): Promise<{ status: number; json: unknown }> => m.request('POST', `/manager/v1/updates/${id}/pause`, { headers: { authorization: `Bearer ${m.adminToken}` }, json: {} });
    expect((await pause()).status).toBe(200);
    const pauses = (await m.auditRecords()).filter((r) => r.event === 'deployment.pause').length;
    expect(await pause()).toMatchObject({ status: 200, json: { status: 'paused' } });
    expect((await m.auditRecords()).filter((r) => r.event === 'deployment.pause')).toHaveLength(pauses);
    expect((await m.request('POST', `/manager/v1/updates/${id}/resume`, { headers: { authorization: `Bearer ${m.adminToken}` }, json: {} })).status).toBe(200);

    // The last phase passes its gate and the deployment completes at once: a soak waits for a next phase, and there is none.
    await m.checkin(second, { agentVersion: '2.0.0', body: checkinBody('2.0.0', '0.5.0', { acks: [secondCommand.id], results: [{ commandId: secondCommand.id, outcome: 'succeeded', detail: {}, nonce: secondCommand.nonce }] }) });
    await m.app.manager.rollouts.tick();
    clock += 61_000;
    await m.checkin(second, { agentVersion: '2.0.0' });
    await m.app.manager.rollouts.tick();
    expect(await deployment()).toMatchObject({ phaseIndex: 1, phaseState: 'done', status: 'completed' });
  });

  /** A manager with `agents` enrolled agents and a one-phase deployment of them all: its id. */
  async function oneWave(rollout: { autoStart?: boolean; tickMs?: number; startsPerTick: number }, agents: number): Promise<{ m: TestManager; id: string }> {
    const m = await startTestManager({ rollout });
    manager = m;
    await m.publish({ version: '1.0.0' });
    await m.publish({ version: '2.0.0' });
    for (let i = 0; i < agents; i++) await m.enroll();
    const res = await m.request('POST', '/manager/v1/updates/notify', {
      headers: { authorization: `Bearer ${m.deployToken}` },
      json: { version: '2.0.0', metadata: { rollout: { percentages: [100], maxInFlight: agents } } },
    });
    expect(res.status, res.text).toBe(200);
    return { m, id: (res.json as { deployment_id: string }).deployment_id };
  }

  it('starts at most startsPerTick targets in one tick, and the next tick comes soon while more wait', async () => {
    const { m, id } = await oneWave({ autoStart: false, startsPerTick: 2 }, 5);
    const started = async (): Promise<number> => (await m.app.manager.context.store.listTargets(id)).filter((t) => t.state !== 'pending').length;
    await m.app.manager.rollouts.tick();
    expect(await started()).toBe(2);
    await m.app.manager.rollouts.tick();
    expect(await started()).toBe(4);
    await m.app.manager.rollouts.tick();
    expect(await started()).toBe(5);
  });

  it('runs the next tick at once while targets wait to start, however long the interval', async () => {
    const { m, id } = await oneWave({ tickMs: 60_000, startsPerTick: 2 }, 7);
    // Four ticks start the seven; with a minute between ticks that would take three minutes.
    const deadline = Date.now() + 5_000;
    let notified = 0;
    while (Date.now() < deadline) {
      notified = (await m.app.manager.context.store.listTargets(id)).filter((t) => t.state !== 'pending').length;
      if (notified === 7) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(notified).toBe(7);
  });

  it('reads on past a window of pending targets whose agents were removed, without waiting for the interval', async () => {
    const { m, id } = await oneWave({ autoStart: false, tickMs: 60_000, startsPerTick: 2 }, 6);
    const store = m.app.manager.context.store;
    // The first window (by agent id) holds only removed agents: the tick skips both, starts none.
    const ids = (await store.listTargets(id)).map((t) => t.agentId).sort();
    for (const agentId of ids.slice(0, 2)) expect(await store.revokeAgent(agentId, new Date())).toBe('revoked');
    m.app.manager.rollouts.start();
    m.app.manager.rollouts.poke();
    const deadline = Date.now() + 5_000;
    let targets = await store.listTargets(id);
    while (Date.now() < deadline && targets.some((t) => t.state === 'pending')) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      targets = await store.listTargets(id);
    }
    expect(targets.filter((t) => t.state === 'skipped').map((t) => t.agentId).sort()).toEqual(ids.slice(0, 2));
    expect(targets.filter((t) => t.state === 'notified')).toHaveLength(4);
  });
});
