// The manager mounted as a plugin in someone else's Fastify app, and its health routes.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ed25519PrivateKey, ed25519AuditSigner, generateFernetKey, generateServiceToken } from '@drover/protocol';
import { managerPlugin, openManagerCore } from '../src/index.js';
import type { ManagerCore } from '../src/index.js';
import { startTestManager } from './harness.js';

let dir: string;
let core: ManagerCore;
const app = Fastify();
const adminToken = generateServiceToken();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'drover-plugin-'));
  const auditKey = Ed25519PrivateKey.generate();
  core = await openManagerCore({
    dataDir: dir,
    adminTokens: [adminToken],
    encryptionKey: generateFernetKey(),
    managerKey: Ed25519PrivateKey.generate(),
    auditSigner: { signer: ed25519AuditSigner(auditKey), publicKey: auditKey.publicKey },
    settings: { routePrefix: '/fleet' },
    env: {},
  });
  app.get('/mine', () => ({ mine: true }));
  app.post('/echo', { schema: { body: { type: 'object', properties: { a: { type: 'string' } } } } }, (request) => request.body);
  await app.register(managerPlugin, { core, prefix: '/fleet' });
  app.addHook('onClose', () => core.close());
  await app.ready();
});
afterAll(async () => {
  await app.close();
  await rm(dir, { recursive: true, force: true });
});

describe('managerPlugin', () => {
  it('serves the manager under the prefix, with its own error shape', async () => {
    expect((await app.inject({ method: 'GET', url: '/fleet/healthz' })).json()).toEqual({ status: 'ok' });
    const list = await app.inject({ method: 'GET', url: '/fleet/v1/agents', headers: { authorization: `Bearer ${adminToken}` } });
    expect(list.statusCode).toBe(200);
    const refused = await app.inject({ method: 'POST', url: '/fleet/v1/agents/enroll', payload: { nope: 1 } });
    expect(refused.statusCode).toBe(400);
    expect(refused.json()).toMatchObject({ error: { code: 'SCHEMA_INVALID' } });
    expect((await app.inject({ method: 'GET', url: '/fleet/nothing' })).json()).toMatchObject({ error: { code: 'NOT_FOUND' } });
  });

  it("leaves the host app's own routes, validation and 404s alone", async () => {
    expect((await app.inject({ method: 'GET', url: '/mine' })).json()).toEqual({ mine: true });
    expect((await app.inject({ method: 'POST', url: '/echo', payload: { a: 'x' } })).json()).toEqual({ a: 'x' });
    const theirs = await app.inject({ method: 'GET', url: '/elsewhere' });
    expect(theirs.statusCode).toBe(404);
    expect(theirs.json()).toMatchObject({ statusCode: 404 });
  });
});

describe('GET /healthz and /readyz', () => {
  it('say ok and ready, then 503 SHUTTING_DOWN once the manager is stopping', async () => {
    const m = await startTestManager();
    try {
      expect((await m.request('GET', '/healthz')).json).toEqual({ status: 'ok' });
      expect((await m.request('GET', '/readyz')).json).toEqual({ status: 'ready' });
      m.app.manager.beginShutdown();
      const stopping = await m.request('GET', '/readyz');
      expect([stopping.status, (stopping.json as { error: { code: string } }).error.code]).toEqual([503, 'SHUTTING_DOWN']);
      const enroll = await m.request('POST', '/v1/agents/enroll', { json: {} });
      expect(enroll.status).toBe(503);
    } finally {
      await m.close();
    }
  });

  it('says 503 NOT_READY when the store is gone', async () => {
    const m = await startTestManager();
    try {
      await m.app.manager.context.store.close();
      const res = await m.request('GET', '/readyz');
      expect([res.status, (res.json as { error: { code: string } }).error.code]).toEqual([503, 'NOT_READY']);
    } finally {
      await m.close();
    }
  });
});
