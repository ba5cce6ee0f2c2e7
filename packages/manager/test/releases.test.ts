import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ed25519PrivateKey, ReleaseResponseSchema, createReleasePayload, matchesSchema, signRelease } from '@drover/protocol';
import { toBase64 } from '@drover/protocol/internal';
import type { DsseEnvelope, ReleaseResponse } from '@drover/protocol';
import { commandsOf, errorOf, refusal, startTestManager } from './harness.js';
import type { EnrolledAgent, TestManager } from './harness.js';

let m: TestManager;
let agent: EnrolledAgent;
let artifact: Uint8Array;
beforeAll(async () => {
  m = await startTestManager();
  agent = await m.enroll();
  artifact = (await m.publish({ version: '2.0.0', bytes: randomBytes(100_000) })).bytes;
});
afterAll(async () => {
  expect(await m.verifyAudit()).toMatchObject({ ok: true });
  expect(await m.leakedSecrets()).toEqual([]);
  await m.close();
});

const sha = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

function envelopeFor(version: string, bytes: Uint8Array, keys: Ed25519PrivateKey[], options: { expiresInSeconds?: number; createdAt?: Date } = {}): DsseEnvelope {
  const payload = createReleasePayload({ artifact: 'agent', version, platform: 'linux-x64', file: { name: 'a.tgz', size: bytes.length, sha256: sha(bytes) }, ...options });
  return signRelease(payload, keys);
}

function register(envelope: unknown, token = m.deployToken): ReturnType<TestManager['request']> {
  return m.request('POST', '/v1/releases', { headers: { authorization: `Bearer ${token}` }, json: { release: envelope } });
}

function upload(version: string, body: Uint8Array): ReturnType<TestManager['request']> {
  return m.request('PUT', `/v1/releases/agent/${version}/linux-x64/artifact`, { headers: { authorization: `Bearer ${m.deployToken}`, 'content-type': 'application/octet-stream' }, body });
}

function download(path: string, headers: Record<string, string> = {}): ReturnType<TestManager['request']> {
  return m.request('GET', path, { headers: { authorization: `Bearer ${agent.credential}`, 'x-machine-id': agent.machineId, ...headers } });
}

describe('publishing', () => {
  it('registers a verified envelope, then accepts exactly the signed bytes', async () => {
    const bytes = randomBytes(5000);
    const envelope = envelopeFor('2.1.0', bytes, [m.releaseKey]);
    const first = await register(envelope);
    expect(first.status).toBe(201);
    expect(first.json).toMatchObject({ status: 'awaiting_upload', created: true, uploadUrl: '/v1/releases/agent/2.1.0/linux-x64/artifact', manifest: { version: '2.1.0' } });
    // Not downloadable before its bytes are in.
    expect(errorOf((await download('/v1/download/agent/2.1.0/linux-x64')))['code']).toBe('RELEASE_NOT_FOUND');
    expect((await upload('2.1.0', bytes)).json).toMatchObject({ status: 'published' });
    const again = await register(envelope);
    expect(again.status).toBe(200);
    expect(again.json).toMatchObject({ status: 'published', created: false, uploadUrl: null });
    const uploadedTwice = await upload('2.1.0', bytes);
    expect(refusal(uploadedTwice)).toEqual([409, 'UPLOAD_NOT_EXPECTED']);
    const records = await m.auditRecords();
    expect(records.filter((r) => r.event === 'release.published' && r.details['version'] === '2.1.0')).toHaveLength(1);
  });

  it('refuses unsigned, untrusted, tampered, expired and malformed envelopes with the protocol codes', async () => {
    const bytes = randomBytes(100);
    const good = envelopeFor('3.0.0', bytes, [m.releaseKey]);
    const unsigned = await register({ ...good, signatures: [] });
    expect(refusal(unsigned)).toEqual([400, 'RELEASE_MALFORMED']);
    const untrusted = await register(envelopeFor('3.0.0', bytes, [Ed25519PrivateKey.generate()]));
    expect(refusal(untrusted)).toEqual([403, 'RELEASE_UNTRUSTED_SIGNER']);
    const tamperedPayload = Buffer.from(good.payload, 'base64').toString('utf8').replace('3.0.0', '3.0.1');
    const tampered = await register({ ...good, payload: toBase64(Buffer.from(tamperedPayload)) });
    expect(refusal(tampered)).toEqual([403, 'RELEASE_SIGNATURE_INVALID']);
    const expired = await register(envelopeFor('3.0.0', bytes, [m.releaseKey], { createdAt: new Date(Date.now() - 7200_000), expiresInSeconds: 3600 }));
    expect(refusal(expired)).toEqual([422, 'RELEASE_EXPIRED']);
    const garbage = await register('not an envelope');
    expect(refusal(garbage)).toEqual([400, 'RELEASE_MALFORMED']);
    const refused = (await m.auditRecords()).filter((r) => r.event === 'release.refused').map((r) => r.details['code']);
    expect(refused).toEqual(expect.arrayContaining(['RELEASE_MALFORMED', 'RELEASE_UNTRUSTED_SIGNER', 'RELEASE_SIGNATURE_INVALID', 'RELEASE_EXPIRED']));
    expect((await m.app.manager.context.store.listReleases({ artifact: 'agent' })).some((r) => r.version === '3.0.0')).toBe(false);
  });

  it('refuses bytes that do not match the signed manifest, keeping the release unpublished', async () => {
    const bytes = randomBytes(2000);
    expect((await register(envelopeFor('4.0.0', bytes, [m.releaseKey]))).status).toBe(201);
    const flipped = Buffer.from(bytes);
    flipped[10] = (flipped[10] ?? 0) ^ 0xff;
    const modified = await upload('4.0.0', flipped);
    expect(refusal(modified)).toEqual([422, 'ARTIFACT_DIGEST_MISMATCH']);
    const short = await upload('4.0.0', bytes.subarray(0, 1999));
    expect(refusal(short)).toEqual([422, 'ARTIFACT_TOO_SHORT']);
    const long = await upload('4.0.0', Buffer.concat([bytes, randomBytes(100_000)]));
    expect(refusal(long)).toEqual([413, 'ARTIFACT_TOO_LARGE']);
    expect((await m.app.manager.context.store.getRelease('agent', '4.0.0', 'linux-x64'))?.state).toBe('pending');
    expect((await upload('4.0.0', bytes)).status).toBe(200);
  });

  it('refuses a second, different release under a published name, and uploads for unknown releases', async () => {
    const other = await register(envelopeFor('2.0.0', randomBytes(10), [m.releaseKey]));
    expect(refusal(other)).toEqual([409, 'RELEASE_EXISTS']);
    const unknown = await upload('9.9.9', randomBytes(10));
    expect(refusal(unknown)).toEqual([404, 'RELEASE_NOT_FOUND']);
  });

  it('needs an admin or deploy token', async () => {
    const none = await m.request('POST', '/v1/releases', { json: { release: {} } });
    expect(refusal(none)).toEqual([401, 'AUTH_REQUIRED']);
    const wrong = await register({}, 'W'.repeat(43));
    expect(refusal(wrong)).toEqual([401, 'AUTH_INVALID']);
    const asAgent = await register({}, agent.credential);
    expect(refusal(asAgent)).toEqual([401, 'AUTH_INVALID']);
    expect((await m.auditRecords()).at(-1)).toMatchObject({ event: 'token.rejected', outcome: 'denied' });
  });

  it('refuses every release when no trust policy is configured', async () => {
    const bare = await startTestManager({ trustPolicy: undefined });
    try {
      const res = await bare.request('POST', '/v1/releases', { headers: { authorization: `Bearer ${bare.adminToken}` }, json: { release: envelopeFor('1.0.0', randomBytes(10), [bare.releaseKey]) } });
      expect(refusal(res)).toEqual([409, 'TRUST_POLICY_MISSING']);
    } finally {
      await bare.close();
    }
  });
});

describe('the catalog', () => {
  it('answers latest with the highest unexpired semver of the channel and platform', async () => {
    await m.publish({ version: '2.0.5' });
    await m.publish({ version: 'abcdef1' });
    await m.publish({ version: '9.0.0', channel: 'beta' });
    const latest = await download('/v1/releases/latest?artifact=agent&platform=linux-x64');
    expect(latest.status).toBe(200);
    expect(matchesSchema(ReleaseResponseSchema, latest.json)).toBe(true);
    expect((latest.json as ReleaseResponse).manifest.version).toBe('4.0.0');
    expect((latest.json as ReleaseResponse).url).toBe('/v1/download/agent/4.0.0/linux-x64');
    expect(((await download('/v1/releases/latest?artifact=agent&platform=linux-x64&channel=beta')).json as ReleaseResponse).manifest.version).toBe('9.0.0');
    const none = await download('/v1/releases/latest?artifact=agent&platform=linux-arm64');
    expect(refusal(none)).toEqual([404, 'RELEASE_NOT_FOUND']);
    const bad = await download('/v1/releases/latest?artifact=agent');
    expect(refusal(bad)).toEqual([400, 'SCHEMA_INVALID']);
  });

  it('answers a release by version, for agents and operators, and asks for a platform when several exist', async () => {
    const byVersion = await download('/v1/releases/agent/v2.0.0');
    expect((byVersion.json as ReleaseResponse).manifest).toMatchObject({ version: '2.0.0', file: { sha256: sha(artifact) } });
    const asOperator = await m.request('GET', '/v1/releases/agent/2.0.0', { headers: { authorization: `Bearer ${m.adminToken}` } });
    expect(asOperator.status).toBe(200);
    await m.publish({ version: '2.0.0', platform: 'linux-arm64' });
    const ambiguous = await download('/v1/releases/agent/2.0.0');
    expect(refusal(ambiguous)).toEqual([400, 'PLATFORM_REQUIRED']);
    expect(((await download('/v1/releases/agent/2.0.0?platform=linux-arm64')).json as ReleaseResponse).manifest.platform).toBe('linux-arm64');
    const anonymous = await m.request('GET', '/v1/releases/agent/2.0.0');
    expect(refusal(anonymous)).toEqual([401, 'AUTH_REQUIRED']);
  });
});

describe('downloads', () => {
  const path = '/v1/download/agent/2.0.0/linux-x64';

  it('serves the bytes to an agent credential from its machine, with ETag and Content-Length', async () => {
    const res = await download(path);
    expect(res.status).toBe(200);
    expect(res.headers['content-length']).toBe(String(artifact.length));
    expect(res.headers['etag']).toBe(`"${sha(artifact)}"`);
    expect(res.headers['accept-ranges']).toBe('bytes');
    expect(sha(Buffer.from(res.text, 'latin1'))).not.toBe(''); // body read; bytes checked below with a range
    const notModified = await download(path, { 'if-none-match': `"${sha(artifact)}"` });
    expect(notModified.status).toBe(304);
  });

  it('serves ranges (206), refuses ranges past the end (416), and ignores a stale If-Range', async () => {
    const part = await m.app.inject({ method: 'GET', url: path, headers: { authorization: `Bearer ${agent.credential}`, 'x-machine-id': agent.machineId, range: 'bytes=100-199' } });
    expect(part.statusCode).toBe(206);
    expect(part.headers['content-range']).toBe(`bytes 100-199/${artifact.length}`);
    expect(part.rawPayload.equals(Buffer.from(artifact.subarray(100, 200)))).toBe(true);
    const tail = await m.app.inject({ method: 'GET', url: path, headers: { authorization: `Bearer ${agent.credential}`, 'x-machine-id': agent.machineId, range: 'bytes=-10' } });
    expect(tail.rawPayload.equals(Buffer.from(artifact.subarray(artifact.length - 10)))).toBe(true);
    const whole = await m.app.inject({ method: 'GET', url: path, headers: { authorization: `Bearer ${agent.credential}`, 'x-machine-id': agent.machineId } });
    expect(whole.rawPayload.equals(Buffer.from(artifact))).toBe(true);
    const past = await download(path, { range: `bytes=${artifact.length}-` });
    expect([...refusal(past), past.headers['content-range']]).toEqual([416, 'RANGE_NOT_SATISFIABLE', `bytes */${artifact.length}`]);
    const stale = await download(path, { range: 'bytes=0-9', 'if-range': '"0000"' });
    expect(stale.status).toBe(200);
  });

  it('refuses a download without authorisation, and a credential from another machine', async () => {
    const anonymous = await m.request('GET', path);
    expect(refusal(anonymous)).toEqual([401, 'DOWNLOAD_UNAUTHORIZED']);
    const elsewhere = await download(path, { 'x-machine-id': 'f'.repeat(64) });
    expect(refusal(elsewhere)).toEqual([403, 'MACHINE_ID_MISMATCH']);
    const forged = await m.request('GET', path, { headers: { authorization: 'Bearer forged-credential' } });
    expect(refusal(forged)).toEqual([401, 'CREDENTIAL_INVALID']);
    expect((await m.auditRecords()).some((r) => r.event === 'download.refused' && r.details['code'] === 'DOWNLOAD_UNAUTHORIZED')).toBe(true);
  });

  it('serves a presigned URL until it expires, and refuses an altered or expired one', async () => {
    const { url } = m.app.manager.presignDownload({ artifact: 'agent', version: '2.0.0', platform: 'linux-x64' }, 60);
    const ok = await m.request('GET', url);
    expect(ok.status).toBe(200);
    expect(ok.headers['cache-control']).toContain('public');
    const expired = m.app.manager.context.urlSigner.presign(path, { ttlSeconds: 60, now: new Date(Date.now() - 3600_000) }).url;
    const late = await m.request('GET', expired);
    expect(refusal(late)).toEqual([403, 'PRESIGNED_URL_EXPIRED']);
    const altered = url.replace(/sig=([0-9a-f])/, (_all, c: string) => `sig=${c === '0' ? '1' : '0'}`);
    const bad = await m.request('GET', altered);
    expect(refusal(bad)).toEqual([403, 'PRESIGNED_URL_INVALID']);
    const otherRelease = url.replace('2.0.0/linux-x64', '2.0.0/linux-arm64');
    expect(errorOf((await m.request('GET', otherRelease)))['code']).toBe('PRESIGNED_URL_INVALID');
    const half = await m.request('GET', `${path}?expires=9999999999`);
    expect(refusal(half)).toEqual([403, 'PRESIGNED_URL_INVALID']);
    const records = (await m.auditRecords()).filter((r) => r.event === 'download.refused').map((r) => r.details['code']);
    expect(records).toEqual(expect.arrayContaining(['PRESIGNED_URL_EXPIRED', 'PRESIGNED_URL_INVALID']));
    // The capability in the query string never reaches a log line.
    expect(m.logs.some((line) => line.includes(new URL(url, 'http://x').searchParams.get('sig') ?? '-'))).toBe(false);
  });

  it('puts presigned URLs into update commands when configured to', async () => {
    const cdn = await startTestManager({ settings: { presignDownloads: true, routePrefix: '/fleet/' } });
    try {
      await cdn.publish({ version: '1.5.0' });
      const host = await cdn.enroll();
      const command = await cdn.app.manager.queueUpdate({ agentId: host.agentId, deploymentId: 'dep-cdn', artifact: 'agent', version: '1.5.0' });
      expect(command.url).toMatch(/^\/fleet\/v1\/download\/agent\/1\.5\.0\/linux-x64\?expires=\d+&sig=[0-9a-f]{64}$/);
      const res = await cdn.request('GET', command.url);
      expect(res.status).toBe(200);
    } finally {
      await cdn.close();
    }
  });
});

describe('operator API', () => {
  it('lists agents to the admin token only', async () => {
    const list = await m.request('GET', '/v1/agents?limit=10', { headers: { authorization: `Bearer ${m.adminToken}` } });
    expect(list.status).toBe(200);
    expect((list.json as { agents: { agentId: string }[] }).agents.map((a) => a.agentId)).toContain(agent.agentId);
    expect(list.text).not.toContain('credentialHash');
    expect(list.text).not.toContain('serviceToken');
    const deploy = await m.request('GET', '/v1/agents', { headers: { authorization: `Bearer ${m.deployToken}` } });
    expect(refusal(deploy)).toEqual([403, 'TOKEN_SCOPE_INSUFFICIENT']);
    const used = (await m.auditRecords()).filter((r) => r.event === 'token.used');
    expect(used.some((r) => r.tokenId === createHash('sha256').update(m.adminToken).digest('hex').slice(0, 16))).toBe(true);
  });

  it('queues an update command over HTTP', async () => {
    const res = await m.request('POST', `/v1/agents/${agent.agentId}/commands`, { headers: { authorization: `Bearer ${m.adminToken}` }, json: { artifact: 'agent', version: '2.0.0' } });
    expect(res.status).toBe(201);
    expect(commandsOf((await m.checkin(agent)))).toEqual([res.json]);
    const missing = await m.request('POST', '/v1/agents/agent-nope/commands', { headers: { authorization: `Bearer ${m.adminToken}` }, json: { artifact: 'agent', version: '2.0.0' } });
    expect(refusal(missing)).toEqual([404, 'AGENT_NOT_FOUND']);
    const unpublished = await m.request('POST', `/v1/agents/${agent.agentId}/commands`, { headers: { authorization: `Bearer ${m.adminToken}` }, json: { artifact: 'agent', version: '7.7.7' } });
    expect(refusal(unpublished)).toEqual([404, 'RELEASE_NOT_FOUND']);
  });
});
