// A client that pastes a secret into a header, a path or a field of a refused request must not
// find it in the permanent audit chain, nor reflected in the answer (issue 18, decision 0022): the
// chain keeps its SHA-256 (`...Sha256`), the answer says "the given ..." or names only a value
// that matched its pattern. Header and body values stay out of the log lines too; a path is in the
// request's access log line, as any web server's.
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkinBody, enrollBody, errorOf, machineId, refusal, startTestManager } from './harness.js';
import type { EnrolledAgent, HttpResult, TestManager } from './harness.js';

let m: TestManager;
let agent: EnrolledAgent;
const download = '/v1/download/agent/1.1.0/linux-x64';

beforeAll(async () => {
  m = await startTestManager();
  agent = await m.enroll();
  await m.publish({ version: '1.1.0' });
});
afterAll(async () => {
  expect(await m.verifyAudit()).toMatchObject({ ok: true });
  await m.close();
});

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');
/** Secret-looking values: a hex key (fits X-Machine-ID's pattern), a token (fits an id's), a base64 secret (fits neither). */
const hexSecret = (): string => randomBytes(32).toString('hex');
const tokenSecret = (): string => `sk_live_${randomBytes(24).toString('base64url')}`;
const base64Secret = (): string => `${randomBytes(30).toString('base64')}+/=`;

const auditText = (): Promise<string> => readFile(join(m.dir, 'audit', 'audit.jsonl'), 'utf8');

/** The secret appears in neither the answer nor the audit log (nor, unless `path`, a log line). */
async function expectNowhere(secret: string, res: HttpResult, where: { path?: boolean; answer?: boolean } = {}): Promise<void> {
  if (where.answer !== false) expect(res.text, 'the answer').not.toContain(secret);
  expect(await auditText(), 'the audit log').not.toContain(secret);
  if (where.path !== true) expect(m.logs.filter((line) => line.includes(secret)), 'the log lines').toEqual([]);
}

describe('a secret pasted where the manager reads a client value', () => {
  it('X-Machine-ID of a download with a valid credential: the audit record keeps its SHA-256', async () => {
    for (const secret of [hexSecret(), tokenSecret(), base64Secret()]) {
      const res = await m.request('GET', download, { headers: { authorization: `Bearer ${agent.credential}`, 'x-machine-id': secret } });
      expect(refusal(res)).toEqual([403, 'MACHINE_ID_MISMATCH']);
      const record = (await m.auditRecords()).at(-1);
      expect(record).toMatchObject({ event: 'agent.machine_id_mismatch', agentId: agent.agentId, details: { route: 'download', presentedMachineIdSha256: sha256(secret) } });
      await expectNowhere(secret, res);
    }
  });

  it('X-Machine-ID of a check-in: a hex secret is refused 403 and kept as its SHA-256, any other 400 and not audited', async () => {
    const hex = hexSecret();
    const mismatch = await m.checkin(agent, { machineId: hex });
    expect(refusal(mismatch)).toEqual([403, 'MACHINE_ID_MISMATCH']);
    expect((await m.auditRecords()).at(-1)?.details).toMatchObject({ presentedMachineIdSha256: sha256(hex) });
    await expectNowhere(hex, mismatch);
    for (const secret of [tokenSecret(), base64Secret()]) {
      const before = (await m.auditRecords()).length;
      const res = await m.checkin(agent, { machineId: secret });
      expect(refusal(res)).toEqual([400, 'SCHEMA_INVALID']);
      expect((await m.auditRecords()).length).toBe(before);
      await expectNowhere(secret, res);
    }
  });

  it('X-Machine-ID and the body of a refused enrollment: only their SHA-256', async () => {
    const token = await m.createEnrollmentToken(1);
    const id = machineId();
    const header = tokenSecret();
    const mismatch = await m.request('POST', '/v1/agents/enroll', { headers: { 'x-machine-id': header }, json: enrollBody(token, id) });
    expect(refusal(mismatch)).toEqual([403, 'MACHINE_ID_MISMATCH']);
    expect((await m.auditRecords()).at(-1)).toMatchObject({ event: 'agent.machine_id_mismatch', details: { route: 'enroll', machineIdSha256: sha256(id), headerMachineIdSha256: sha256(header) } });
    await expectNowhere(header, mismatch);

    const hex = hexSecret();
    const hostname = tokenSecret();
    const refused = await m.request('POST', '/v1/agents/enroll', { headers: { 'x-machine-id': hex }, json: enrollBody('A'.repeat(43), hex, { hostname }) });
    expect(refusal(refused)).toEqual([403, 'ENROLLMENT_TOKEN_INVALID']);
    expect((await m.auditRecords()).at(-1)).toMatchObject({ event: 'agent.enroll_refused', details: { machineIdSha256: sha256(hex), hostnameSha256: sha256(hostname) } });
    await expectNowhere(hex, refused);
    await expectNowhere(hostname, refused);
  });

  it("the agent id in a check-in URL: another agent's id is named, any other only hashed, and the answer echoes neither", async () => {
    const other = await m.enroll();
    const named = await m.request('POST', `/v1/agents/${other.agentId}/checkin`, {
      headers: { authorization: `Bearer ${agent.credential}`, 'x-machine-id': agent.machineId, 'x-agent-version': '1.0.0', 'x-daemon-version': '0.5.0' },
      json: checkinBody(),
    });
    expect(refusal(named)).toEqual([403, 'CREDENTIAL_AGENT_MISMATCH']);
    expect((await m.auditRecords()).at(-1)?.details).toMatchObject({ targetAgentId: other.agentId });
    expect(named.text).not.toContain(other.agentId);

    const secret = tokenSecret();
    const res = await m.checkin({ ...agent, agentId: secret });
    expect(refusal(res)).toEqual([403, 'CREDENTIAL_AGENT_MISMATCH']);
    expect((await m.auditRecords()).at(-1)).toMatchObject({ event: 'agent.credential_misused', details: { targetAgentIdSha256: sha256(secret) } });
    await expectNowhere(secret, res, { path: true });

    // Not even an id: validation refuses it, and nothing is audited.
    const before = (await m.auditRecords()).length;
    const malformed = base64Secret();
    const invalid = await m.checkin({ ...agent, agentId: encodeURIComponent(malformed) });
    expect(refusal(invalid)).toEqual([400, 'SCHEMA_INVALID']);
    expect((await m.auditRecords()).length).toBe(before);
    await expectNowhere(malformed, invalid, { path: true });
  });

  it('the path of a refused download: the release when the catalog has it, else its SHA-256', async () => {
    const known = await m.request('GET', download);
    expect(refusal(known)).toEqual([401, 'DOWNLOAD_UNAUTHORIZED']);
    expect((await m.auditRecords()).at(-1)?.details).toMatchObject({ code: 'DOWNLOAD_UNAUTHORIZED', artifact: 'agent', version: '1.1.0', platform: 'linux-x64' });

    const secret = tokenSecret();
    const path = `/v1/download/agent/${secret}/linux-x64`;
    for (const headers of [{}, { authorization: `Bearer ${agent.credential}`, 'x-machine-id': hexSecret() }] as Record<string, string>[]) {
      const res = await m.request('GET', path, { headers });
      expect(res.status).toBeGreaterThanOrEqual(401);
      expect(res.status).toBeLessThanOrEqual(403);
      await expectNowhere(secret, res, { path: true });
    }
    expect((await m.auditRecords()).find((r) => r.event === 'download.refused' && r.details['pathSha256'] === sha256(path))).toBeDefined();
  });

  it("a refused result's command id and forged nonce: the chain keeps hashes, never the claimed payload", async () => {
    const secret = tokenSecret();
    const unknown = await m.checkin(agent, { body: checkinBody('1.0.0', '0.5.0', { results: [{ commandId: secret, outcome: 'failed', detail: { code: 'UPDATE_FAILED' } }] }) });
    expect(refusal(unknown)).toEqual([409, 'COMMAND_UNKNOWN']);
    expect((await m.auditRecords()).at(-1)).toMatchObject({ event: 'update.result_refused', details: { code: 'COMMAND_UNKNOWN', commandIdSha256: sha256(secret) } });
    // The daemon drops the result by the id in the answer: it matched the command id pattern.
    expect(errorOf(unknown)['commandId']).toBe(secret);
    await expectNowhere(secret, unknown, { answer: false });

    // A nonce not signed by this manager, whose payload claims a secret agent id and deployment.
    const command = await m.app.manager.queueUpdate({ agentId: agent.agentId, deploymentId: 'dep-presented', artifact: 'agent', version: '1.1.0' });
    const claimed = tokenSecret();
    const payload = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(command.nonce.split('.')[0] ?? '', 'base64url').toString('utf8')), agentId: claimed, deploymentId: claimed })).toString('base64url');
    const forged = `${payload}.${randomBytes(64).toString('base64url')}`;
    const res = await m.checkin(agent, { body: checkinBody('1.0.0', '0.5.0', { results: [{ commandId: command.id, outcome: 'failed', detail: {}, nonce: forged }] }) });
    expect(refusal(res)).toEqual([403, 'NONCE_SIGNATURE_INVALID']);
    expect((await m.auditRecords()).at(-1)).toMatchObject({ event: 'update.result_refused', deploymentId: 'dep-presented', details: { commandId: command.id } });
    await expectNowhere(claimed, res);
  });

  it('an unknown route, an unknown field and a malformed id: the answer names none of them', async () => {
    const secret = tokenSecret();
    const route = await m.request('GET', `/v1/${secret}`);
    expect(refusal(route)).toEqual([404, 'NOT_FOUND']);
    await expectNowhere(secret, route, { path: true });

    const key = tokenSecret();
    const field = await m.request('POST', '/v1/enrollment-tokens', { headers: { authorization: `Bearer ${m.adminToken}` }, json: { seats: 1, [key]: true } });
    expect(refusal(field)).toEqual([400, 'SCHEMA_INVALID']);
    await expectNowhere(key, field);

    const malformed = base64Secret();
    const id = await m.request('GET', `/v1/agents/${encodeURIComponent(malformed)}`, { headers: { authorization: `Bearer ${m.adminToken}` } });
    expect(refusal(id)).toEqual([400, 'SCHEMA_INVALID']);
    await expectNowhere(malformed, id, { path: true });

    const version = await m.request('POST', '/manager/v1/updates/notify', { headers: { authorization: `Bearer ${m.deployToken}` }, json: { version: `${malformed} x` } });
    expect(refusal(version)).toEqual([400, 'DEPLOYMENT_VERSION_REQUIRED']);
    await expectNowhere(malformed, version);
  });
});
