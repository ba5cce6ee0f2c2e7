// An operator removes a host (DELETE /v1/agents/:id, `drover agents remove`): from then on its
// credential is refused with 403 AGENT_REVOKED, on check-ins (and so on the results they carry) and
// downloads alike, and each attempt is audited; it is no new rollout's candidate, an open rollout
// skips it without counting it against the gate, and a new enrollment brings it back.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { UpdateCommand } from '@drover/protocol';
import { checkinBody, commandsOf, refusal, startTestManager } from './harness.js';
import type { EnrolledAgent, TestManager } from './harness.js';

let m: TestManager;
beforeAll(async () => {
  m = await startTestManager();
  await m.publish({ version: '1.1.0' });
});
afterAll(async () => {
  expect(await m.verifyAudit()).toMatchObject({ ok: true });
  expect(await m.leakedSecrets()).toEqual([]);
  await m.close();
});

const admin = (): Record<string, string> => ({ authorization: `Bearer ${m.adminToken}` });

function remove(agentId: string, headers = admin()): ReturnType<TestManager['request']> {
  return m.request('DELETE', `/v1/agents/${agentId}`, { headers });
}

function download(agent: EnrolledAgent): ReturnType<TestManager['request']> {
  return m.request('GET', '/v1/download/agent/1.1.0/linux-x64', { headers: { authorization: `Bearer ${agent.credential}`, 'x-machine-id': agent.machineId } });
}

describe('DELETE /v1/agents/{agentId}: removing a host', () => {
  it('refuses the removed host\'s next check-in, the result it carries, and its download with 403 AGENT_REVOKED, each audited; other hosts go on', async () => {
    const host = await m.enroll();
    const other = await m.enroll();
    const command = await m.app.manager.queueUpdate({ agentId: host.agentId, deploymentId: 'dep-removal', artifact: 'agent', version: '1.1.0' });
    expect((await m.checkin(host)).status).toBe(200);
    expect((await download(host)).status).toBe(200);

    const removed = await remove(host.agentId);
    expect(removed.status).toBe(200);
    const revokedAt = (removed.json as { agent: { revokedAt: string } }).agent.revokedAt;
    expect(Date.parse(revokedAt)).not.toBeNaN();
    expect((await m.auditRecords()).filter((r) => r.event === 'agent.revoked' && r.agentId === host.agentId)).toMatchObject([{ actor: expect.stringMatching(/^operator:/) as unknown, outcome: 'success' }]);

    expect(refusal(await m.checkin(host))).toEqual([403, 'AGENT_REVOKED']);
    const withResult = await m.checkin(host, { body: checkinBody('1.1.0', '0.5.0', { results: [{ commandId: command.id, outcome: 'succeeded', detail: {}, nonce: command.nonce }] }) });
    expect(refusal(withResult)).toEqual([403, 'AGENT_REVOKED']);
    expect(refusal(await download(host))).toEqual([403, 'AGENT_REVOKED']);
    // The result was not recorded: the command is as the last accepted check-in left it.
    expect((await m.app.manager.listCommands(host.agentId)).find((c) => c.id === command.id)?.outcome).toBeUndefined();
    const refusals = (await m.auditRecords()).filter((r) => r.event === 'agent.revoked_credential_used' && r.agentId === host.agentId);
    expect(refusals).toHaveLength(3);
    expect(refusals[0]).toMatchObject({ outcome: 'denied', details: { revokedAt } });
    expect((await m.checkin(other)).status).toBe(200);
  });

  it('is idempotent: removing a removed host answers the same and records no second removal; an unknown id is 404, a deploy token 403', async () => {
    const host = await m.enroll();
    const first = await remove(host.agentId);
    const again = await remove(host.agentId);
    expect(again.status).toBe(200);
    expect(again.json).toEqual(first.json);
    expect((await m.auditRecords()).filter((r) => r.event === 'agent.revoked' && r.agentId === host.agentId)).toHaveLength(1);
    expect(refusal(await remove('agent-0000000000000000'))).toEqual([404, 'AGENT_NOT_FOUND']);
    const other = await m.enroll();
    expect((await remove(other.agentId, { authorization: `Bearer ${m.deployToken}` })).status).toBe(403);
    expect((await m.checkin(other)).status).toBe(200);
  });

  it('lists the removed host with its revokedAt, leaves it out of new rollouts, and a new enrollment of the machine brings it back', async () => {
    const host = await m.enroll();
    await remove(host.agentId);
    const shown = await m.request('GET', `/v1/agents/${host.agentId}`, { headers: admin() });
    expect((shown.json as { agent: { revokedAt: string | null } }).agent.revokedAt).not.toBeNull();
    expect((await m.app.manager.context.store.listRolloutCandidates()).map((c) => c.id)).not.toContain(host.agentId);

    const back = await m.enroll({ machineId: host.machineId });
    expect(back.agentId).toBe(host.agentId);
    expect((await m.checkin(back)).status).toBe(200);
    expect(refusal(await m.checkin(host))).toEqual([401, 'CREDENTIAL_INVALID']);
    expect((await m.app.manager.context.store.listRolloutCandidates()).map((c) => c.id)).toContain(host.agentId);
  });
});

describe('a host removed during a rollout', () => {
  it('has its open target skipped (AGENT_REMOVED), not counted by the gate: the rollout completes on the other host', async () => {
    let clock = Date.now();
    const r = await startTestManager({ now: () => new Date(clock), rollout: { autoStart: false } });
    try {
      await r.publish({ version: '1.0.0' });
      await r.publish({ version: '2.0.0' });
      const [kept, removed] = [await r.enroll(), await r.enroll()];
      const notify = await r.request('POST', '/manager/v1/updates/notify', {
        headers: { authorization: `Bearer ${r.deployToken}` },
        json: { version: '2.0.0', strategy: 'immediate', metadata: { rollout: { healthGraceSeconds: 1 } } },
      });
      expect(notify.status, notify.text).toBe(200);
      const id = (notify.json as { deployment_id: string }).deployment_id;
      await r.app.manager.rollouts.tick();
      const [command] = commandsOf(await r.checkin(kept)) as UpdateCommand[];
      if (command === undefined) throw new Error('no command for the kept host');
      expect(commandsOf(await r.checkin(removed))).toHaveLength(1);
      expect((await r.request('DELETE', `/v1/agents/${removed.agentId}`, { headers: { authorization: `Bearer ${r.adminToken}` } })).status).toBe(200);
      await r.checkin(kept, { agentVersion: '2.0.0', body: checkinBody('2.0.0', '0.5.0', { acks: [command.id], results: [{ commandId: command.id, outcome: 'succeeded', detail: {}, nonce: command.nonce }] }) });
      await r.app.manager.rollouts.tick();
      clock += 2_000;
      await r.checkin(kept, { agentVersion: '2.0.0' });
      await r.app.manager.rollouts.tick();
      const targets = await r.app.manager.context.store.listTargets(id);
      expect(targets.find((t) => t.agentId === removed.agentId)).toMatchObject({ state: 'skipped', errorCode: 'AGENT_REMOVED' });
      expect(targets.find((t) => t.agentId === kept.agentId)?.state).toBe('succeeded');
      expect(await r.app.manager.context.store.getDeployment(id)).toMatchObject({ status: 'completed' });
      expect(await r.verifyAudit()).toMatchObject({ ok: true });
    } finally {
      await r.close();
    }
  });
});
