// Credential rotation (decision 0032): POST /v1/agents/{agentId}/credential gives an enrolled host
// a new credential, pending beside the one it presented; both work until the new one's first use
// from the host's machine, which makes it the credential and the old one refused. Each step is
// audited; refusals (another machine, another agent's URL, a removed host) change nothing.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditRecord, CredentialResponse } from '@drover/protocol';
import { refusal, startTestManager } from './harness.js';
import type { EnrolledAgent, HttpResult, TestManager } from './harness.js';

let m: TestManager;
beforeAll(async () => {
  m = await startTestManager();
});
afterAll(async () => {
  expect(await m.verifyAudit()).toMatchObject({ ok: true });
  expect(await m.leakedSecrets()).toEqual([]);
  await m.close();
});

const idOf = (secret: string): string => createHash('sha256').update(secret).digest('hex').slice(0, 16);

function rotate(agent: EnrolledAgent, headers: Record<string, string> = {}): Promise<HttpResult> {
  return m.request('POST', `/v1/agents/${agent.agentId}/credential`, {
    headers: { authorization: `Bearer ${agent.credential}`, 'x-machine-id': agent.machineId, ...headers },
  });
}

/** Rotates and returns the host as it is with the new credential. */
async function rotated(agent: EnrolledAgent): Promise<EnrolledAgent> {
  const res = await rotate(agent);
  expect(res.status, res.text).toBe(200);
  const issued = res.json as CredentialResponse;
  m.secrets.add(issued.credential);
  return { ...agent, credential: issued.credential };
}

async function events(agentId: string, event: string): Promise<AuditRecord[]> {
  return (await m.auditRecords()).filter((r) => r.agentId === agentId && r.event === event);
}

describe('POST /v1/agents/{agentId}/credential', () => {
  it('issues a new credential, answered once with no-store; the old one works until the new one is used, then only the new one', async () => {
    const host = await m.enroll();
    const res = await rotate(host);
    expect(res.status).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    const issued = res.json as CredentialResponse;
    m.secrets.add(issued.credential);
    expect(issued.credential).not.toBe(host.credential);
    expect(Date.parse(issued.issuedAt)).not.toBeNaN();
    expect(await events(host.agentId, 'agent.credential_issued')).toMatchObject([{ details: { credentialId: idOf(issued.credential), replacesCredentialId: idOf(host.credential) } }]);

    // Pending: the old credential still works, and using it changes nothing.
    expect((await m.checkin(host)).status).toBe(200);
    expect(await events(host.agentId, 'agent.credential_rotated')).toEqual([]);
    const next = { ...host, credential: issued.credential };
    expect((await m.checkin(next)).status).toBe(200);
    expect(await events(host.agentId, 'agent.credential_rotated')).toMatchObject([{ details: { credentialId: idOf(issued.credential) } }]);
    expect(refusal(await m.checkin(host))).toEqual([401, 'CREDENTIAL_INVALID']);
    expect((await m.checkin(next)).status).toBe(200);
    expect(await events(host.agentId, 'agent.credential_rotated')).toHaveLength(1);
  });

  it('a second rotation before the first is used replaces it: the first new credential never works', async () => {
    const host = await m.enroll();
    const first = await rotated(host);
    const second = await rotated(host);
    expect(refusal(await m.checkin(first))).toEqual([401, 'CREDENTIAL_INVALID']);
    expect((await m.checkin(host)).status).toBe(200);
    expect((await m.checkin(second)).status).toBe(200);
    expect(refusal(await m.checkin(host))).toEqual([401, 'CREDENTIAL_INVALID']);
    // And the host rotates again from its new credential.
    const third = await rotated(second);
    expect((await m.checkin(third)).status).toBe(200);
    expect(refusal(await m.checkin(second))).toEqual([401, 'CREDENTIAL_INVALID']);
  });

  it('two first uses at once: both are accepted and the rotation is recorded once', async () => {
    const host = await m.enroll();
    const next = await rotated(host);
    const answers = await Promise.all([m.checkin(next), m.checkin(next), m.checkin(next)]);
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200]);
    expect(await events(host.agentId, 'agent.credential_rotated')).toHaveLength(1);
    expect(refusal(await m.checkin(host))).toEqual([401, 'CREDENTIAL_INVALID']);
  });

  it('refuses another machine (audited, nothing issued), a missing machine id, no credential, and another agent\'s URL', async () => {
    const host = await m.enroll();
    const other = await m.enroll();
    expect(refusal(await rotate(host, { 'x-machine-id': other.machineId }))).toEqual([403, 'MACHINE_ID_MISMATCH']);
    expect((await m.auditRecords()).filter((r) => r.agentId === host.agentId && r.event === 'agent.machine_id_mismatch')).toHaveLength(1);
    expect(await events(host.agentId, 'agent.credential_issued')).toEqual([]);
    const noMachine = await m.request('POST', `/v1/agents/${host.agentId}/credential`, { headers: { authorization: `Bearer ${host.credential}` } });
    expect(noMachine.status).toBe(400);
    expect(refusal(await m.request('POST', `/v1/agents/${host.agentId}/credential`, { headers: { 'x-machine-id': host.machineId } }))).toEqual([401, 'AUTH_REQUIRED']);
    expect(refusal(await m.request('POST', `/v1/agents/${other.agentId}/credential`, { headers: { authorization: `Bearer ${host.credential}`, 'x-machine-id': host.machineId } }))).toEqual([403, 'CREDENTIAL_AGENT_MISMATCH']);
    expect(await events(other.agentId, 'agent.credential_issued')).toEqual([]);
    expect((await m.checkin(host)).status).toBe(200);
  });

  it('a pending credential presented from another machine is refused and not promoted: the old one keeps working', async () => {
    const host = await m.enroll();
    const other = await m.enroll();
    const next = await rotated(host);
    expect(refusal(await m.checkin(next, { machineId: other.machineId }))).toEqual([403, 'MACHINE_ID_MISMATCH']);
    expect(await events(host.agentId, 'agent.credential_rotated')).toEqual([]);
    expect((await m.checkin(host)).status).toBe(200);
    expect((await m.checkin(next)).status).toBe(200);
  });

  it('a removed host can neither rotate nor use a pending credential; a new enrollment drops the pending one', async () => {
    const host = await m.enroll();
    const next = await rotated(host);
    expect((await m.request('DELETE', `/v1/agents/${host.agentId}`, { headers: { authorization: `Bearer ${m.adminToken}` } })).status).toBe(200);
    expect(refusal(await rotate(host))).toEqual([403, 'AGENT_REVOKED']);
    // The removal dropped the pending credential: it is no credential any more.
    expect(refusal(await m.checkin(next))).toEqual([401, 'CREDENTIAL_INVALID']);
    expect(await events(host.agentId, 'agent.credential_rotated')).toEqual([]);

    const back = await m.enroll({ machineId: host.machineId });
    const pendingAgain = await rotated(back);
    const again = await m.enroll({ machineId: host.machineId });
    expect(refusal(await m.checkin(pendingAgain))).toEqual([401, 'CREDENTIAL_INVALID']);
    expect((await m.checkin(again)).status).toBe(200);
  });
});
