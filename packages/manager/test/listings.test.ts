// The operator listings: GET /v1/releases (`drover release list`) and GET /v1/deployments
// (`drover rollout list`), GET /v1/agents' filters (the console's fleet search, `drover agents list`),
// for the deploy and admin tokens, never for an agent's credential.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { refusal, startTestManager } from './harness.js';
import type { TestManager } from './harness.js';

let m: TestManager;
beforeAll(async () => {
  m = await startTestManager({ rollout: { autoStart: false } });
  await m.publish({ version: '1.2.0' });
  await m.publish({ version: '1.10.0' });
  await m.publish({ version: '1.10.0', platform: 'linux-arm64' });
  await m.publish({ version: '2.0.0-rc.1', channel: 'beta' });
  await m.enroll();
});
afterAll(async () => {
  expect(await m.verifyAudit()).toMatchObject({ ok: true });
  await m.close();
});

const as = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

describe('GET /v1/releases', () => {
  it('lists one artifact newest version first (1.10.0 above 1.2.0), with size, digest, signers and expiry; filters by platform and channel', async () => {
    const all = await m.request('GET', '/v1/releases?artifact=agent', { headers: as(m.deployToken) });
    expect(all.status).toBe(200);
    const releases = (all.json as { releases: { version: string; platform: string; channel: string; state: string; file: { size: number; sha256: string }; signers: string[]; expiresAt: string }[] }).releases;
    expect(releases.map((r) => `${r.version} ${r.platform}`)).toEqual(['2.0.0-rc.1 linux-x64', '1.10.0 linux-arm64', '1.10.0 linux-x64', '1.2.0 linux-x64']);
    expect(releases[3]).toMatchObject({ channel: 'stable', state: 'published', signers: [m.releaseKey.keyid], file: { sha256: expect.stringMatching(/^[0-9a-f]{64}$/) as unknown } });
    const arm = await m.request('GET', '/v1/releases?artifact=agent&platform=linux-arm64', { headers: as(m.adminToken) });
    expect((arm.json as { releases: { version: string }[] }).releases.map((r) => r.version)).toEqual(['1.10.0']);
    const beta = await m.request('GET', '/v1/releases?artifact=agent&channel=beta', { headers: as(m.adminToken) });
    expect((beta.json as { releases: { version: string }[] }).releases.map((r) => r.version)).toEqual(['2.0.0-rc.1']);
  });

  it('refuses a missing artifact or a bad filter with 400, and an agent credential or no token with 401', async () => {
    expect((await m.request('GET', '/v1/releases', { headers: as(m.deployToken) })).status).toBe(400);
    expect((await m.request('GET', '/v1/releases?artifact=agent&state=gone', { headers: as(m.deployToken) })).status).toBe(400);
    expect((await m.request('GET', '/v1/releases?artifact=agent')).status).toBe(401);
    const agent = await m.enroll();
    expect(refusal(await m.request('GET', '/v1/releases?artifact=agent', { headers: { authorization: `Bearer ${agent.credential}`, 'x-machine-id': agent.machineId } }))[0]).toBe(401);
  });
});

describe('GET /v1/agents', () => {
  it("shows each host's canary group and pending command (the console's fleet page)", async () => {
    const host = await m.enroll();
    expect((await m.request('PUT', `/v1/agents/${host.agentId}/rollout`, { headers: as(m.adminToken), json: { group: 'explorer' } })).status).toBe(200);
    const queued = await m.request('POST', `/v1/agents/${host.agentId}/commands`, { headers: as(m.adminToken), json: { artifact: 'agent', version: '1.2.0', deploymentId: 'manual-console' } });
    expect(queued.status, queued.text).toBe(201);
    const listed = await m.request('GET', '/v1/agents?limit=1000', { headers: as(m.adminToken) });
    const agents = (listed.json as { agents: { agentId: string; group: string | null; pendingCommand: unknown }[] }).agents;
    expect(agents.find((a) => a.agentId === host.agentId)).toMatchObject({ group: 'explorer', pendingCommand: { type: 'update', deploymentId: 'manual-console', deliveredCount: 0 } });
    expect(agents.filter((a) => a.agentId !== host.agentId).every((a) => a.group === null && a.pendingCommand === null)).toBe(true);
  });
});

describe('GET /v1/agents filters', () => {
  type Listing = { agents: { agentId: string; agentVersion: string; group: string | null }[]; next: string | null; total: number };
  const list = async (query: string): Promise<Listing> => {
    const res = await m.request('GET', `/v1/agents?${query}`, { headers: as(m.adminToken) });
    expect(res.status, res.text).toBe(200);
    return res.json as Listing;
  };

  it('narrows the fleet by search text, group, version and health; total counts the matches; pages by after within the filter', async () => {
    const first = await m.enroll({ agentVersion: '3.0.0' });
    const second = await m.enroll({ agentVersion: '3.0.0' });
    expect((await m.checkin(first, { agentVersion: '3.0.0' })).status).toBe(200);
    expect((await m.request('PUT', `/v1/agents/${second.agentId}/rollout`, { headers: as(m.adminToken), json: { group: 'early_adopter' } })).status).toBe(200);
    const [low, high] = [first.agentId, second.agentId].sort();

    expect(await list('version=3.0.0')).toMatchObject({ agents: [{ agentId: low }, { agentId: high }], next: null, total: 2 });
    expect(await list(`q=${encodeURIComponent(first.agentId.toUpperCase())}`)).toMatchObject({ agents: [{ agentId: first.agentId }], total: 1 });
    expect(await list('version=3.0.0&health=healthy')).toMatchObject({ agents: [{ agentId: first.agentId }], total: 1 });
    expect(await list('version=3.0.0&group=early_adopter')).toMatchObject({ agents: [{ agentId: second.agentId, group: 'early_adopter' }], total: 1 });
    expect(await list('q=%25&version=3.0.0')).toMatchObject({ agents: [], total: 0 });
    const page = await list('version=3.0.0&limit=1');
    expect(page).toMatchObject({ agents: [{ agentId: low }], next: low, total: 2 });
    expect(await list(`version=3.0.0&limit=1&after=${low}`)).toMatchObject({ agents: [{ agentId: high }], total: 2 });
    expect((await list('limit=1000')).total).toBeGreaterThan(2);
  });

  it('refuses a bad filter with 400 SCHEMA_INVALID, never a 5xx', async () => {
    for (const query of ['group=nobody', 'health=sick', 'version=..%2Fx', `q=${'x'.repeat(129)}`, 'search=web', 'group=', 'health=healthy&health=degraded']) {
      const res = await m.request('GET', `/v1/agents?${query}`, { headers: as(m.adminToken) });
      expect(refusal(res), `${query}: ${res.text}`).toEqual([400, 'SCHEMA_INVALID']);
    }
  });
});

describe('GET /v1/deployments', () => {
  it('lists deployments newest first with their phase; --active keeps those not ended', async () => {
    const empty = await m.request('GET', '/v1/deployments', { headers: as(m.adminToken) });
    expect(empty.json).toEqual({ deployments: [] });
    const first = await m.request('POST', '/manager/v1/updates/notify', { headers: as(m.deployToken), json: { version: '1.2.0', strategy: 'manual' } });
    expect(first.status, first.text).toBe(200);
    const firstId = (first.json as { deployment_id: string }).deployment_id;
    expect((await m.request('POST', `/manager/v1/updates/${firstId}/abort`, { headers: as(m.adminToken), json: {} })).status).toBe(200);
    const second = await m.request('POST', '/manager/v1/updates/notify', { headers: as(m.deployToken), json: { version: '1.10.0' } });
    const secondId = (second.json as { deployment_id: string }).deployment_id;
    const listed = await m.request('GET', '/v1/deployments', { headers: as(m.deployToken) });
    const deployments = (listed.json as { deployments: { deploymentId: string; version: string; status: string; phase: number; phases: number; strategy: string }[] }).deployments;
    expect(deployments.map((d) => [d.deploymentId, d.version, d.status])).toEqual([[secondId, '1.10.0', expect.any(String)], [firstId, '1.2.0', 'cancelled']]);
    // By canary groups: a host has one (GET /v1/agents above).
    expect(deployments[0]).toMatchObject({ strategy: 'canary', phase: 1, phases: 3, phaseNames: ['explorers', 'early_adopters', 'general'], soakUntil: null });
    const active = await m.request('GET', '/v1/deployments?active=true&limit=5', { headers: as(m.adminToken) });
    expect((active.json as { deployments: { deploymentId: string }[] }).deployments.map((d) => d.deploymentId)).toEqual([secondId]);
    expect((await m.request('GET', '/v1/deployments?limit=0', { headers: as(m.adminToken) })).status).toBe(400);
  });
});
