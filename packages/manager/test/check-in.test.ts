import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CheckinResponseSchema, CheckinUpgradeRequiredSchema, Ed25519PrivateKey, UpdateCommandSchema, issueNonce, matchesSchema, readNonceUnverified } from '@drover/protocol';
import type { UpdateCommand } from '@drover/protocol';
import { checkinBody, commandsOf, errorOf, machineId, refusal, startTestManager } from './harness.js';
import type { EnrolledAgent, TestManager } from './harness.js';

let m: TestManager;
beforeAll(async () => {
  m = await startTestManager({ settings: { minAgentVersion: '1.0.0' } });
  await m.publish({ version: '1.1.0' });
  await m.publish({ version: '1.2.0' });
});
afterAll(async () => {
  expect(await m.verifyAudit()).toMatchObject({ ok: true });
  expect(await m.leakedSecrets()).toEqual([]);
  await m.close();
});

async function queue(agent: EnrolledAgent, version = '1.1.0', deploymentId = 'dep-1'): Promise<UpdateCommand> {
  return m.app.manager.queueUpdate({ agentId: agent.agentId, deploymentId, artifact: 'agent', version });
}

/** A result for `command`; `nonce: null` leaves the nonce out. */
function result(command: UpdateCommand, outcome: string, nonce: string | null = command.nonce): Record<string, unknown> {
  return { commandId: command.id, outcome, detail: outcome === 'succeeded' ? {} : { code: 'AGENT_BUSY' }, ...(nonce === null ? {} : { nonce }) };
}

describe('POST /v1/agents/{agentId}/checkin: authentication and binding', () => {
  it('answers 401 without a credential and with a wrong one', async () => {
    const agent = await m.enroll();
    const none = await m.checkin(agent, { headers: { authorization: '' } });
    expect(refusal(none)).toEqual([401, 'AUTH_REQUIRED']);
    const wrong = await m.checkin({ ...agent, credential: 'A'.repeat(43) });
    expect(refusal(wrong)).toEqual([401, 'CREDENTIAL_INVALID']);
  });

  it("refuses agent A's credential on agent B's URL with 403, and audits it", async () => {
    const a = await m.enroll();
    const b = await m.enroll();
    const res = await m.checkin({ ...b, credential: a.credential, machineId: a.machineId });
    expect(refusal(res)).toEqual([403, 'CREDENTIAL_AGENT_MISMATCH']);
    expect((await m.auditRecords()).at(-1)).toMatchObject({ event: 'agent.credential_misused', agentId: a.agentId, outcome: 'denied', details: { targetAgentId: b.agentId } });
  });

  it('refuses a credential used from another machine with 403 MACHINE_ID_MISMATCH and a security audit record', async () => {
    const agent = await m.enroll();
    const other = machineId();
    const res = await m.checkin(agent, { machineId: other });
    expect(refusal(res)).toEqual([403, 'MACHINE_ID_MISMATCH']);
    const record = (await m.auditRecords()).at(-1);
    // The presented header is the client's text: the chain keeps its SHA-256 only.
    expect(record).toMatchObject({
      event: 'agent.machine_id_mismatch',
      agentId: agent.agentId,
      outcome: 'denied',
      details: { enrolledMachineId: agent.machineId, presentedMachineIdSha256: createHash('sha256').update(other).digest('hex') },
    });
    expect(JSON.stringify(record)).not.toContain(other);
    // The agent's state was not touched by the refused check-in.
    expect((await m.app.manager.getAgent(agent.agentId))?.lastCheckinAt).toBeUndefined();
  });

  it('answers 400 SCHEMA_INVALID (not 5xx) for missing headers and malformed bodies', async () => {
    const agent = await m.enroll();
    const noVersion = await m.checkin(agent, { headers: { 'x-agent-version': '' } });
    expect(refusal(noVersion)).toEqual([400, 'SCHEMA_INVALID']);
    const badBody = await m.checkin(agent, { body: { ...checkinBody(), acks: 'all' } });
    expect(refusal(badBody)).toEqual([400, 'SCHEMA_INVALID']);
    const notVersion = await m.checkin(agent, { agentVersion: 'latest' });
    expect(refusal(notVersion)).toEqual([400, 'VERSION_INVALID']);
  });
});

describe('check-in: commands and the version gate', () => {
  it('answers 200 with the interval and records the state', async () => {
    const agent = await m.enroll();
    const res = await m.checkin(agent, { agentVersion: '1.0.3', daemonVersion: '0.6.0' });
    expect(res.status).toBe(200);
    expect(matchesSchema(CheckinResponseSchema, res.json)).toBe(true);
    expect(res.json).toEqual({ commands: [], nextCheckinSeconds: 60 });
    const stored = await m.app.manager.getAgent(agent.agentId);
    expect(stored).toMatchObject({ agentVersion: '1.0.3', daemonVersion: '0.6.0', health: { status: 'healthy' } });
    expect(stored?.lastCheckinAt).toBeInstanceOf(Date);
  });

  it('answers 426 to an agent below the minimum version, still carrying its update command', async () => {
    const agent = await m.enroll({ agentVersion: '0.9.0' });
    const command = await queue(agent);
    const res = await m.checkin(agent, { agentVersion: '0.9.0' });
    expect(res.status).toBe(426);
    expect(matchesSchema(CheckinUpgradeRequiredSchema, res.json)).toBe(true);
    expect(errorOf(res)['code']).toBe('AGENT_VERSION_TOO_OLD');
    expect(commandsOf(res)).toEqual([command]);
  });

  it('re-sends a command on every check-in until it is acked, and never after', async () => {
    const agent = await m.enroll();
    const command = await queue(agent);
    expect(matchesSchema(UpdateCommandSchema, command)).toBe(true);
    for (let i = 0; i < 3; i += 1) {
      const res = await m.checkin(agent);
      expect(commandsOf(res)).toEqual([command]);
    }
    const acked = await m.checkin(agent, { body: checkinBody('1.0.0', '0.5.0', { acks: [command.id] }) });
    expect(commandsOf(acked)).toEqual([]);
    for (let i = 0; i < 2; i += 1) expect(commandsOf((await m.checkin(agent)))).toEqual([]);
    const [stored] = await m.app.manager.listCommands(agent.agentId);
    expect(stored).toMatchObject({ id: command.id, deliveredCount: 3 });
    expect(stored?.ackedAt).toBeInstanceOf(Date);
  });

  it('ignores acks of commands that are not this agent’s', async () => {
    const a = await m.enroll();
    const b = await m.enroll();
    const command = await queue(a);
    await m.checkin(b, { body: checkinBody('1.0.0', '0.5.0', { acks: [command.id] }) });
    expect(commandsOf((await m.checkin(a)))).toEqual([command]);
  });

  it('binds the nonce of a command to its agent, machine, deployment and versions', async () => {
    const agent = await m.enroll();
    const command = await queue(agent, '1.2.0', 'dep-bind');
    expect(readNonceUnverified(command.nonce)).toMatchObject({ agentId: agent.agentId, machineId: agent.machineId, deploymentId: 'dep-bind', artifact: 'agent', fromVersion: '1.0.0', toVersion: '1.2.0', rollback: false });
    expect(command.url).toBe('/v1/download/agent/1.2.0/linux-x64');
  });
});

describe('check-in: update results and nonce completion', () => {
  it('records a valid completion once, and refuses its replay with 409 NONCE_REPLAYED and an audit record', async () => {
    const agent = await m.enroll();
    const command = await queue(agent, '1.1.0', 'dep-ok');
    await m.checkin(agent, { body: checkinBody('1.0.0', '0.5.0', { acks: [command.id] }) });
    const done = await m.checkin(agent, { agentVersion: '1.1.0', body: checkinBody('1.1.0', '0.5.0', { results: [result(command, 'succeeded')] }) });
    expect(done.status).toBe(200);
    const nonceId = readNonceUnverified(command.nonce).nonceId;
    expect(await m.app.manager.context.store.getNonce(nonceId)).toMatchObject({ consumedOutcome: 'succeeded', reportedVersion: '1.1.0' });
    expect((await m.app.manager.listCommands(agent.agentId))[0]).toMatchObject({ outcome: 'succeeded' });
    expect((await m.auditRecords()).at(-1)).toMatchObject({ event: 'update.completed', agentId: agent.agentId, deploymentId: 'dep-ok', outcome: 'succeeded', details: { nonceId } });

    const replay = await m.checkin(agent, { agentVersion: '1.1.0', body: checkinBody('1.1.0', '0.5.0', { results: [result(command, 'failed')] }) });
    expect([...refusal(replay), errorOf(replay).commandId]).toEqual([409, 'NONCE_REPLAYED', command.id]);
    expect((await m.auditRecords()).at(-1)).toMatchObject({ event: 'update.result_refused', outcome: 'denied', details: { code: 'NONCE_REPLAYED', nonceId } });
    expect((await m.app.manager.listCommands(agent.agentId))[0]?.outcome).toBe('succeeded');
  });

  it('refuses a success reported from another version than the target with 409, leaving the nonce unspent', async () => {
    const agent = await m.enroll();
    const command = await queue(agent, '1.2.0', 'dep-ver');
    const res = await m.checkin(agent, { agentVersion: '1.1.0', body: checkinBody('1.1.0', '0.5.0', { results: [result(command, 'succeeded')] }) });
    expect(refusal(res)).toEqual([409, 'NONCE_VERSION_MISMATCH']);
    expect((await m.auditRecords()).at(-1)).toMatchObject({ event: 'update.result_refused', details: { code: 'NONCE_VERSION_MISMATCH' } });
    expect((await m.app.manager.context.store.getNonce(readNonceUnverified(command.nonce).nonceId))?.consumedAt).toBeUndefined();
    // Nothing of the refused check-in was written: the command is still unacked and delivered.
    expect(commandsOf((await m.checkin(agent)))).toEqual([command]);
  });

  it("refuses another agent's nonce with 403 NONCE_WRONG_AGENT", async () => {
    const a = await m.enroll();
    const b = await m.enroll();
    const commandA = await queue(a, '1.1.0', 'dep-x');
    const commandB = await queue(b, '1.1.0', 'dep-x');
    const res = await m.checkin(b, { agentVersion: '1.1.0', body: checkinBody('1.1.0', '0.5.0', { results: [result(commandB, 'succeeded', commandA.nonce)] }) });
    expect(refusal(res)).toEqual([403, 'NONCE_WRONG_AGENT']);
    expect((await m.auditRecords()).at(-1)).toMatchObject({ event: 'update.result_refused', agentId: b.agentId, details: { code: 'NONCE_WRONG_AGENT', nonceAgentId: a.agentId } });
    // And a result naming A's command from B is not B's to report.
    const stolen = await m.checkin(b, { agentVersion: '1.1.0', body: checkinBody('1.1.0', '0.5.0', { results: [result(commandA, 'succeeded')] }) });
    expect(refusal(stolen)).toEqual([409, 'COMMAND_UNKNOWN']);
  });

  it('refuses a nonce of another command, a forged one and a missing one', async () => {
    const agent = await m.enroll();
    const first = await queue(agent, '1.1.0', 'dep-1');
    const second = await queue(agent, '1.2.0', 'dep-2');
    const crossed = await m.checkin(agent, { agentVersion: '1.2.0', body: checkinBody('1.2.0', '0.5.0', { results: [result(second, 'succeeded', first.nonce)] }) });
    expect(refusal(crossed)).toEqual([403, 'NONCE_WRONG_COMMAND']);
    const forged = issueNonce({ ...readNonceUnverified(second.nonce), nonceId: readNonceUnverified(second.nonce).nonceId }, Ed25519PrivateKey.generate()).token;
    const bad = await m.checkin(agent, { agentVersion: '1.2.0', body: checkinBody('1.2.0', '0.5.0', { results: [result(second, 'succeeded', forged)] }) });
    expect(refusal(bad)).toEqual([403, 'NONCE_SIGNATURE_INVALID']);
    const missing = await m.checkin(agent, { agentVersion: '1.2.0', body: checkinBody('1.2.0', '0.5.0', { results: [result(second, 'succeeded', null)] }) });
    expect(refusal(missing)).toEqual([403, 'NONCE_MISSING']);
  });

  it('refuses a nonce signed by the manager key that the manager never issued (NONCE_UNKNOWN), audited with what it claims', async () => {
    const agent = await m.enroll();
    const command = await queue(agent, '1.1.0', 'dep-u');
    const claimed = readNonceUnverified(command.nonce);
    // The same nonce id with other content, and a new id: both carry a valid signature of the manager's key.
    const altered = issueNonce({ ...claimed, toVersion: '1.1.1', ttlSeconds: 600 }, m.managerKey).token;
    const unissued = issueNonce({ ...claimed, nonceId: undefined, ttlSeconds: 600 }, m.managerKey).token;
    for (const token of [altered, unissued]) {
      const res = await m.checkin(agent, { agentVersion: '1.1.0', body: checkinBody('1.1.0', '0.5.0', { results: [result(command, 'succeeded', token)] }) });
      expect(refusal(res)).toEqual([403, 'NONCE_UNKNOWN']);
      expect((await m.auditRecords()).at(-1)).toMatchObject({ event: 'update.result_refused', details: { code: 'NONCE_UNKNOWN', nonceId: readNonceUnverified(token).nonceId } });
    }
    // The nonce the manager issued still completes the update.
    const done = await m.checkin(agent, { agentVersion: '1.1.0', body: checkinBody('1.1.0', '0.5.0', { acks: [command.id], results: [result(command, 'succeeded')] }) });
    expect(done.status).toBe(200);
  });

  it('records a deferral as progress without spending the nonce', async () => {
    const agent = await m.enroll();
    const command = await queue(agent, '1.1.0', 'dep-busy');
    const res = await m.checkin(agent, { body: checkinBody('1.0.0', '0.5.0', { acks: [command.id], results: [result(command, 'deferred', null)] }) });
    expect(res.status).toBe(200);
    expect((await m.auditRecords()).at(-1)).toMatchObject({ event: 'update.deferred', outcome: 'deferred', deploymentId: 'dep-busy', details: { code: 'AGENT_BUSY' } });
    const later = await m.checkin(agent, { agentVersion: '1.1.0', body: checkinBody('1.1.0', '0.5.0', { results: [result(command, 'succeeded')] }) });
    expect(later.status).toBe(200);
  });
});

describe('restart between two check-ins', () => {
  it('loses nothing and continues the audit chain', async () => {
    const agent = await m.enroll();
    const command = await queue(agent, '1.2.0', 'dep-restart');
    expect(commandsOf((await m.checkin(agent)))).toEqual([command]);
    const before = (await m.auditRecords()).length;
    m = await m.restart();
    // The same credential, the same pending command, the same machine binding.
    const after = await m.checkin(agent);
    expect(after.status).toBe(200);
    expect(commandsOf(after)).toEqual([command]);
    const records = await m.auditRecords();
    expect(records.slice(before).map((r) => r.event)).toEqual(['manager.stopped', 'manager.started']);
    expect(await m.verifyAudit()).toMatchObject({ ok: true, count: records.length });
    const done = await m.checkin(agent, { agentVersion: '1.2.0', body: checkinBody('1.2.0', '0.5.0', { acks: [command.id], results: [result(command, 'succeeded')] }) });
    expect(done.status).toBe(200);
  });
});
