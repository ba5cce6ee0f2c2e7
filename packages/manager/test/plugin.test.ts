// The manager mounted as a plugin in someone else's Fastify app, and its health routes.
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify from 'fastify';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ed25519PrivateKey, createReleasePayload, ed25519AuditSigner, generateServiceToken, signRelease, trustPolicyDocument } from '@drover/protocol';
import { generateFernetKey } from '@drover/protocol/internal';
import { initManagerDirectory, managerPlugin } from '../src/index.js';
import type { ManagerOptions } from '../src/index.js';
import { managerCorePlugin } from '../src/http/plugin.js';
import { silentLogger } from '../src/logger.js';
import { openManagerCore } from '../src/server/core.js';
import { startTestManager } from './harness.js';

let dir: string;
const app = Fastify();
const adminToken = generateServiceToken();

function managerOptions(dataDir: string): ManagerOptions {
  const auditKey = Ed25519PrivateKey.generate();
  return {
    dataDir,
    adminTokens: [adminToken],
    encryptionKey: generateFernetKey(),
    managerKey: Ed25519PrivateKey.generate(),
    auditSigner: { signer: ed25519AuditSigner(auditKey), publicKey: auditKey.publicKey },
    env: {},
  };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'drover-plugin-'));
  app.get('/mine', () => ({ mine: true }));
  app.post('/echo', { schema: { body: { type: 'object', properties: { a: { type: 'string' } } } } }, (request) => request.body);
  await app.register(managerPlugin, { ...managerOptions(dir), prefix: '/fleet' });
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

  it('opens the manager from a directory, and hands out URLs under the prefix it is mounted at', async () => {
    const own = await mkdtemp(join(tmpdir(), 'drover-plugin-dir-'));
    const host = Fastify({ return503OnClosing: false, routerOptions: { maxParamLength: 256 } });
    try {
      const releaseKey = Ed25519PrivateKey.generate();
      const created = await initManagerDirectory({ dir: join(own, 'm'), trustPolicy: trustPolicyDocument([releaseKey.publicKey]), env: {} });
      await host.register(managerPlugin, { dir: created.dir, env: {}, logger: silentLogger(), prefix: '/drover' });
      const agents = await host.inject({ method: 'GET', url: '/drover/v1/agents', headers: { authorization: `Bearer ${created.adminToken}` } });
      expect([agents.statusCode, agents.json()]).toEqual([200, { agents: [], next: null, total: 0 }]);

      // manager.json says no routePrefix; the upload URL carries the mount's.
      const bytes = Buffer.from('agent v1.2.0');
      const payload = createReleasePayload({ artifact: 'agent', version: '1.2.0', platform: 'linux-x64', file: { name: 'agent.tar.gz', size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') } });
      const published = await host.inject({
        method: 'POST',
        url: '/drover/v1/releases',
        headers: { authorization: `Bearer ${created.deployToken}` },
        payload: { release: signRelease(payload, [releaseKey]) },
      });
      expect(published.statusCode).toBe(201);
      expect(published.json()).toMatchObject({ status: 'awaiting_upload', uploadUrl: '/drover/v1/releases/agent/1.2.0/linux-x64/artifact' });
    } finally {
      await host.close();
      await rm(own, { recursive: true, force: true });
    }
  });
});

describe('managerCorePlugin (what managerPlugin and the ready server mount)', () => {
  it("stops the manager with the host app: closing from preClose, closed once the app's in-flight requests are done", async () => {
    const own = await mkdtemp(join(tmpdir(), 'drover-plugin-close-'));
    const host = Fastify();
    try {
      const mounted = await openManagerCore({ ...managerOptions(join(own, 'data')), settings: { routePrefix: '/fleet' } });
      let release: () => void = () => undefined;
      const held = new Promise<void>((resolve) => {
        release = resolve;
      });
      let started: () => void = () => undefined;
      const inFlight = new Promise<void>((resolve) => {
        started = resolve;
      });
      host.get('/slow', async () => {
        started();
        await held;
        return { done: true };
      });
      await host.register(managerCorePlugin, { core: mounted, prefix: '/fleet' });
      const url = await host.listen({ host: '127.0.0.1', port: 0 });
      // reset: the connection closes after the answer, so the server's close does not wait for its keep-alive.
      const slow = request(`${url}/slow`, { headersTimeout: 10_000, reset: true });
      await inFlight;

      const closed = host.close();
      const deadline = Date.now() + 5_000;
      while (!mounted.closing && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
      // preClose ran: the manager refuses new work, but is not closed while the app still serves a request.
      expect(mounted.closing).toBe(true);
      const auditPath = join(own, 'data', 'audit', 'audit.jsonl');
      const eventsOf = async (): Promise<string[]> => (await readFile(auditPath, 'utf8')).trim().split('\n').map((line) => (JSON.parse(line) as { event: string }).event);
      expect(await eventsOf()).not.toContain('manager.stopped');

      release();
      expect(await (await slow).body.json()).toEqual({ done: true });
      await closed;
      // onClose ran: the stop is audited (once), and the store is closed.
      expect((await eventsOf()).filter((event) => event === 'manager.stopped')).toHaveLength(1);
      await expect(Promise.resolve().then(() => mounted.context.store.ping())).rejects.toThrow();
    } finally {
      await host.close();
      await rm(own, { recursive: true, force: true });
    }
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
