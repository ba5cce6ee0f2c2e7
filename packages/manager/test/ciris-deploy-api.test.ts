// The deploy API against what the real CIRIS clients send and read (docs/ciris-compat.md, read from
// CIRISManager 7d902f2 and CIRISAgent 2bd11fc): every payload CIRISManager's notify model accepts is
// accepted (unknown strategy and risk strings recorded as given, extra fields ignored, optional fields
// optional), and the changelog answers 200 even before any release exists.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { refusal, startTestManager } from './harness.js';
import type { TestManager } from './harness.js';

let m: TestManager;
beforeAll(async () => {
  m = await startTestManager({ rollout: { autoStart: false } });
  await m.enroll();
});
afterAll(async () => {
  expect(await m.verifyAudit()).toMatchObject({ ok: true });
  expect(await m.leakedSecrets()).toEqual([]);
  await m.close();
});

const deploy = (): Record<string, string> => ({ authorization: `Bearer ${m.deployToken}` });
const admin = (): Record<string, string> => ({ authorization: `Bearer ${m.adminToken}` });

interface Status {
  strategy: string;
  notification: Record<string, unknown> | null;
  events: { event_type: string; details: Record<string, unknown> | null }[];
}

// Notifies, reads the deployment back, and aborts it so the next notification may start.
async function notified(json: unknown): Promise<{ id: string; status: Status }> {
  const res = await m.request('POST', '/manager/v1/updates/notify', { headers: deploy(), json });
  expect(res.status, res.text).toBe(200);
  const id = (res.json as { deployment_id: string }).deployment_id;
  const status = await m.request('GET', `/manager/v1/updates/status?deployment_id=${id}`, { headers: deploy() });
  expect(status.status, status.text).toBe(200);
  expect((await m.request('POST', `/manager/v1/updates/${id}/abort`, { headers: admin(), json: {} })).status).toBe(200);
  return { id, status: status.json as Status };
}

describe('GET /manager/v1/updates/latest/changelog', () => {
  it('answers 200 with an empty list when no release is published, then the latest release', async () => {
    const empty = await m.request('GET', '/manager/v1/updates/latest/changelog', { headers: deploy() });
    expect(empty.status, empty.text).toBe(200);
    expect(empty.json).toEqual({
      artifact: 'agent',
      version: null,
      commit_sha: null,
      released_at: null,
      changelog: '',
      latest: { version: null, date: null, changes: [] },
      summary: 'No agent release is published yet.',
    });
    const daemon = await m.request('GET', '/manager/v1/updates/latest/changelog?artifact=daemon', { headers: admin() });
    expect(daemon.status).toBe(200);
    expect(daemon.json).toMatchObject({ artifact: 'daemon', version: null, latest: { changes: [] } });
    await m.publish({ version: '1.0.0' });
    const published = await m.request('GET', '/manager/v1/updates/latest/changelog', { headers: deploy() });
    expect(published.status).toBe(200);
    expect(published.json).toMatchObject({ artifact: 'agent', version: '1.0.0', latest: { version: '1.0.0' } });
    // Still a token route: a fleet's release notes are not public.
    expect(refusal(await m.request('GET', '/manager/v1/updates/latest/changelog'))[0]).toBe(401);
  });
});

describe('POST /manager/v1/updates/notify: what CIRISManager accepts', () => {
  it("accepts the CIRISAgent CD job's exact body and records it", async () => {
    // build.yml, job deploy: version is CIRIS_VERSION, commit_sha the full SHA.
    const body = {
      agent_image: 'ghcr.io/cirisai/ciris-agent:latest',
      strategy: 'canary',
      source: 'github-actions',
      commit_sha: '2bd11fcbdb71f110ef1cc5e40b3d1cca06ce055c',
      changelog: 'Fixed: desktop Google OAuth billing',
      version: '2.9.33-stable',
    };
    const { status } = await notified(body);
    expect(status.strategy).toBe('canary');
    expect(status.notification).toEqual({ ...body, message: 'Update available', metadata: {}, risk_level: 'unknown' });
  });

  it('records an unknown strategy and risk level as given and rolls out as canary, as CIRISManager does', async () => {
    const { status } = await notified({ agent_image: 'ghcr.io/cirisai/ciris-agent:2.0.0', version: '2.0.0', strategy: 'rolling', risk_level: 'critical' });
    expect(status.strategy).toBe('canary');
    expect(status.notification).toMatchObject({ strategy: 'rolling', risk_level: 'critical' });
    const created = status.events.find((e) => e.event_type === 'created');
    expect(created?.details).toMatchObject({ strategy: 'canary', requested_strategy: 'rolling', risk_level: 'critical' });
    // The strategies CIRISManager acts on keep their meaning.
    const manual = await notified({ version: '2.0.0', strategy: 'manual' });
    expect(manual.status.strategy).toBe('manual');
    const immediate = await notified({ version: '2.0.0', strategy: 'immediate', risk_level: '' });
    expect(immediate.status).toMatchObject({ strategy: 'immediate', notification: { strategy: 'immediate', risk_level: '' } });
  });

  it('ignores fields it does not name, and records none of them', async () => {
    const { status } = await notified({ version: '2.0.1', staged_by: 'ops', dry_run: true, nested: { a: [1, 2] }, deployment_id: 'forged' });
    expect(status.notification).not.toHaveProperty('staged_by');
    expect(status.notification).not.toHaveProperty('dry_run');
    expect(status.notification).not.toHaveProperty('nested');
    expect(status.notification).not.toHaveProperty('deployment_id');
    expect(JSON.stringify(await m.auditRecords())).not.toContain('forged');
  });

  it('takes every optional field as optional or null, and any commit string (only hex is used as a commit)', async () => {
    const bare = await notified({ version: '2.0.2' });
    expect(bare.status.notification).toEqual({ version: '2.0.2', message: 'Update available', strategy: 'canary', metadata: {}, source: 'github-actions', risk_level: 'unknown' });
    const nulls = await notified({
      agent_image: 'ghcr.io/cirisai/ciris-agent:2.0.3',
      gui_image: null,
      nginx_image: null,
      version: '2.0.3',
      commit_sha: 'main',
      changelog: null,
      risk_level: null,
      source: null,
      metadata: {},
      message: 'Update available',
    });
    expect(nulls.status.notification).toMatchObject({ commit_sha: 'main', risk_level: null, source: null, gui_image: null });
    const record = await m.app.manager.context.store.getDeployment(nulls.id);
    expect(record?.commitSha).toBeUndefined();
    const hex = await notified({ version: '2.0.4', commit_sha: 'ABCDEF1234567' });
    expect((await m.app.manager.context.store.getDeployment(hex.id))?.commitSha).toBe('abcdef1234567');
  });

  it('still needs a version: an image-only notification is 400 DEPLOYMENT_VERSION_REQUIRED, wrong types are 400 SCHEMA_INVALID', async () => {
    const imageOnly = await m.request('POST', '/manager/v1/updates/notify', { headers: deploy(), json: { agent_image: 'ghcr.io/cirisai/ciris-agent:latest' } });
    expect(refusal(imageOnly)).toEqual([400, 'DEPLOYMENT_VERSION_REQUIRED']);
    const numeric = await m.request('POST', '/manager/v1/updates/notify', { headers: deploy(), json: { version: '2.0.5', strategy: 7 } });
    expect(refusal(numeric)).toEqual([400, 'SCHEMA_INVALID']);
  });
});
