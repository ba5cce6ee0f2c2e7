import Fastify from 'fastify';
import type { FastifyInstance } from 'fastify';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { droverAgentPlugin, requireServiceTokenFastify } from './index.js';
import { AUTH, call, errorCode, makeAgent, shutdownCall } from '../test/harness.js';

let app: FastifyInstance | undefined;

async function listen(instance: FastifyInstance): Promise<number> {
  app = instance;
  await instance.listen({ port: 0, host: '127.0.0.1' });
  return (instance.server.address() as AddressInfo).port;
}

afterEach(async () => {
  app?.server.closeAllConnections();
  await app?.close();
  app = undefined;
});

// Route behaviour over real HTTP is in adapters.test.ts; these cover the Fastify-only edges.
describe('Fastify plugin', () => {
  it('keeps its body parsing to its own scope: the app\'s JSON routes still parse JSON', async () => {
    const { agent } = makeAgent();
    const instance = Fastify();
    await instance.register(droverAgentPlugin, { agent });
    instance.post('/echo', (request, reply) => reply.send({ got: request.body }));
    const port = await listen(instance);
    const echo = await call(port, { method: 'POST', path: '/echo', headers: { 'content-type': 'application/json' }, body: '{"a":1}' });
    expect(echo.json).toEqual({ got: { a: 1 } });
    expect((await call(port, shutdownCall({ reason: 'x', confirm: false }))).status).toBe(400);
  });

  it('works under a prefix', async () => {
    const { agent } = makeAgent();
    const instance = Fastify();
    await instance.register(droverAgentPlugin, { agent, prefix: '/agent' });
    const port = await listen(instance);
    expect((await call(port, { path: '/agent/v1/system/health' })).json).toEqual({ status: 'healthy', version: '1.2.3', busy: false });
    expect((await call(port, { ...shutdownCall({ reason: 'x', confirm: true }), path: '/agent/v1/system/shutdown' })).status).toBe(200);
  });

  it('an unparseable Content-Type still gets auth first, then drover\'s 400 body', async () => {
    const { agent } = makeAgent();
    const instance = Fastify();
    await instance.register(droverAgentPlugin, { agent });
    const port = await listen(instance);
    const stranger = await call(port, { method: 'POST', path: '/v1/system/shutdown', headers: { 'content-type': '/' }, body: '{}' });
    expect(stranger.status).toBe(401);
    expect(errorCode(stranger)).toBe('AUTH_REQUIRED');
    const caller = await call(port, { method: 'POST', path: '/v1/system/shutdown', headers: { ...AUTH, 'content-type': '/' }, body: '{}' });
    expect(caller.status).toBe(400);
    expect(errorCode(caller)).toBe('BODY_MALFORMED');
  });

  it('requireServiceTokenFastify guards a route of your own', async () => {
    const { agent } = makeAgent();
    const instance = Fastify();
    instance.post('/admin/reload', { preHandler: requireServiceTokenFastify(agent) }, (_, reply) => reply.send({ reloaded: true }));
    const port = await listen(instance);
    const refused = await call(port, { method: 'POST', path: '/admin/reload' });
    expect(refused.status).toBe(401);
    expect(errorCode(refused)).toBe('AUTH_REQUIRED');
    expect(errorCode(await call(port, { method: 'POST', path: '/admin/reload', headers: { authorization: 'Bearer service:nope' } }))).toBe('AUTH_INVALID');
    expect((await call(port, { method: 'POST', path: '/admin/reload', headers: AUTH })).json).toEqual({ reloaded: true });
  });
});
