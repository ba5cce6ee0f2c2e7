import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EnrollResponseSchema, matchesSchema } from '@drover/protocol';
import type { EnrollResponse } from '@drover/protocol';
import { hashSecret } from '../src/secrets.js';
import { enrollBody as harnessEnrollBody, errorOf, machineId, refusal, startTestManager } from './harness.js';
import type { TestManager } from './harness.js';

let m: TestManager;
// The manager's clock runs this far ahead of the real one: a test moves it forward instead of sleeping.
let clockAheadMs = 0;
beforeAll(async () => {
  m = await startTestManager({ settings: { checkinIntervalSeconds: 30 }, now: () => new Date(Date.now() + clockAheadMs) });
});
afterAll(async () => {
  // Every run ends with a verifiable audit log and no secret in it or in any log line.
  expect(await m.verifyAudit()).toMatchObject({ ok: true });
  expect(await m.leakedSecrets()).toEqual([]);
  await m.close();
});

function enrollBody(token: string, id = machineId()): Record<string, unknown> {
  return harnessEnrollBody(token, id);
}

describe('POST /v1/agents/enroll', () => {
  it('enrolls a host: agent id, credential, service token, the manager key, the interval', async () => {
    const token = await m.createEnrollmentToken(1);
    const id = machineId();
    const res = await m.request('POST', '/v1/agents/enroll', { headers: { 'x-machine-id': id }, json: enrollBody(token, id) });
    expect(res.status).toBe(200);
    expect(matchesSchema(EnrollResponseSchema, res.json)).toBe(true);
    const body = res.json as EnrollResponse;
    m.secrets.add(body.credential);
    m.secrets.add(body.serviceToken);
    expect(body.managerKeys).toEqual([{ keyid: m.managerKey.keyid, publicKey: m.managerKey.publicKey.toBase64() }]);
    expect(body.checkinIntervalSeconds).toBe(30);
    expect(res.headers['cache-control']).toBe('no-store');
    // Stored: the credential hashed, the service token encrypted (and decryptable by the manager).
    const agent = await m.app.manager.getAgent(body.agentId);
    expect(agent?.credentialHash).toBe(hashSecret(body.credential));
    expect(agent?.serviceTokenCiphertext).not.toContain(body.serviceToken);
    expect(await m.app.manager.serviceToken(body.agentId)).toBe(body.serviceToken);
    const records = await m.auditRecords();
    expect(records.find((r) => r.event === 'agent.enrolled' && r.agentId === body.agentId)).toMatchObject({ outcome: 'success', tokenId: hashSecret(token).slice(0, 16) });
  });

  it('refuses a token whose seats are spent with 403 ENROLLMENT_TOKEN_EXHAUSTED', async () => {
    const token = await m.createEnrollmentToken(2);
    expect((await m.request('POST', '/v1/agents/enroll', { json: enrollBody(token) })).status).toBe(200);
    expect((await m.request('POST', '/v1/agents/enroll', { json: enrollBody(token) })).status).toBe(200);
    const third = await m.request('POST', '/v1/agents/enroll', { json: enrollBody(token) });
    expect(third.status).toBe(403);
    expect(errorOf(third)['code']).toBe('ENROLLMENT_TOKEN_EXHAUSTED');
    const refused = (await m.auditRecords()).filter((r) => r.event === 'agent.enroll_refused');
    expect(refused.at(-1)).toMatchObject({ outcome: 'denied', details: { code: 'ENROLLMENT_TOKEN_EXHAUSTED', seats: 2, used: 2 } });
  });

  it('spends seats exactly once under concurrent enrollments', async () => {
    const token = await m.createEnrollmentToken(3);
    const results = await Promise.all(Array.from({ length: 8 }, () => m.request('POST', '/v1/agents/enroll', { json: enrollBody(token) })));
    for (const r of results) if (r.status === 200) m.secrets.add((r.json as EnrollResponse).credential);
    expect(results.filter((r) => r.status === 200)).toHaveLength(3);
    expect(results.filter((r) => r.status === 403).map((r) => errorOf(r)['code'])).toEqual(Array<string>(5).fill('ENROLLMENT_TOKEN_EXHAUSTED'));
  });

  it('refuses an expired token with 403 ENROLLMENT_TOKEN_EXPIRED', async () => {
    const created = await m.app.manager.createEnrollmentToken({ seats: 5, expiresInSeconds: 1 });
    m.secrets.add(created.token);
    clockAheadMs += 1000; // the token's one second has passed on the manager's clock
    const res = await m.request('POST', '/v1/agents/enroll', { json: enrollBody(created.token) });
    expect(res.status).toBe(403);
    expect(errorOf(res)['code']).toBe('ENROLLMENT_TOKEN_EXPIRED');
  });

  it('refuses unknown and revoked tokens with 403 and their codes', async () => {
    const unknown = await m.request('POST', '/v1/agents/enroll', { json: enrollBody('x'.repeat(43)) });
    expect(refusal(unknown)).toEqual([403, 'ENROLLMENT_TOKEN_INVALID']);
    const token = await m.createEnrollmentToken(5);
    const revoke = await m.request('DELETE', `/v1/enrollment-tokens/${hashSecret(token).slice(0, 16)}`, { headers: { authorization: `Bearer ${m.adminToken}` } });
    expect(revoke.status).toBe(204);
    const res = await m.request('POST', '/v1/agents/enroll', { json: enrollBody(token) });
    expect(refusal(res)).toEqual([403, 'ENROLLMENT_TOKEN_REVOKED']);
  });

  it('re-enrolls the same machine under the same agent id, rotating its credential (the old one stops working)', async () => {
    const token = await m.createEnrollmentToken(2);
    const id = machineId();
    const first = await m.enroll({ token, machineId: id });
    expect((await m.checkin(first)).status).toBe(200);
    const second = await m.enroll({ token, machineId: id, agentVersion: '1.0.1' });
    expect(second.agentId).toBe(first.agentId);
    expect(second.credential).not.toBe(first.credential);
    expect(second.serviceToken).not.toBe(first.serviceToken);
    const old = await m.checkin(first);
    expect(refusal(old)).toEqual([401, 'CREDENTIAL_INVALID']);
    expect((await m.checkin(second, { agentVersion: '1.0.1' })).status).toBe(200);
    const record = (await m.auditRecords()).find((r) => r.event === 'agent.reenrolled' && r.agentId === first.agentId);
    expect(record?.details).toMatchObject({ previousCredentialId: hashSecret(first.credential).slice(0, 16), credentialId: hashSecret(second.credential).slice(0, 16) });
    expect((await m.app.manager.listEnrollmentTokens()).find((t) => t.id === hashSecret(token).slice(0, 16))?.used).toBe(2);
  });

  it('refuses a body that claims another machine than the X-Machine-ID header, and audits it', async () => {
    const token = await m.createEnrollmentToken(1);
    const res = await m.request('POST', '/v1/agents/enroll', { headers: { 'x-machine-id': machineId() }, json: enrollBody(token) });
    expect(refusal(res)).toEqual([403, 'MACHINE_ID_MISMATCH']);
    expect((await m.auditRecords()).at(-1)).toMatchObject({ event: 'agent.machine_id_mismatch', outcome: 'denied' });
  });

  it('answers malformed enrollments with 400 and a code, never echoing the token', async () => {
    const token = await m.createEnrollmentToken(1);
    const res = await m.request('POST', '/v1/agents/enroll', { json: { ...enrollBody(token), machineId: 'not-hex', extra: 1 } });
    expect(refusal(res)).toEqual([400, 'SCHEMA_INVALID']);
    const broken = await m.request('POST', '/v1/agents/enroll', { headers: { 'content-type': 'application/json' }, body: `{"enrollmentToken":"${token}"` });
    expect(refusal(broken)).toEqual([400, 'BODY_MALFORMED']);
    expect(broken.text).not.toContain(token);
  });

  it('can refuse re-enrollment when configured to', async () => {
    const strict = await startTestManager({ settings: { allowReenrollment: false } });
    try {
      const token = await strict.createEnrollmentToken(2);
      const id = machineId();
      await strict.enroll({ token, machineId: id });
      const again = await strict.request('POST', '/v1/agents/enroll', { json: enrollBody(token, id) });
      expect(refusal(again)).toEqual([409, 'AGENT_ALREADY_ENROLLED']);
    } finally {
      await strict.close();
    }
  });
});
