import { createServer, request as httpRequest } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createNodeHandler, createNodeMiddleware, requireServiceTokenNode } from './index.js';
import { AUTH, call, errorCode, makeAgent, shutdownCall } from '../test/harness.js';

let server: Server | undefined;

async function serve(listener: (req: IncomingMessage, res: ServerResponse) => void): Promise<number> {
  server = createServer(listener);
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  server = undefined;
});

const app = (_req: IncomingMessage, res: ServerResponse): void => {
  res.writeHead(200, { 'content-type': 'text/plain' }).end('app');
};

describe('node:http adapter', () => {
  it('the handler takes only the agent routes and returns false for the rest', async () => {
    const { agent } = makeAgent();
    const handler = createNodeHandler(agent);
    const port = await serve((req, res) => {
      if (!handler(req, res)) app(req, res);
    });
    expect((await call(port, { path: '/v1/system/health' })).json).toEqual({ status: 'healthy', version: '1.2.3', busy: false });
    expect((await call(port, { path: '/v1/system/health?x=1' })).status).toBe(200);
    expect((await call(port, { path: '/v1/system/other' })).text).toBe('app');
    expect((await call(port, { path: '/' })).text).toBe('app');
  });

  it('the middleware answers the agent routes and calls next for the rest', async () => {
    const { agent } = makeAgent();
    const middleware = createNodeMiddleware(agent);
    const port = await serve((req, res) => {
      middleware(req, res, () => {
        app(req, res);
      });
    });
    expect((await call(port, shutdownCall({ reason: 'x', confirm: false }))).status).toBe(400);
    expect((await call(port, { path: '/jobs' })).text).toBe('app');
  });

  it('uses a body a framework already parsed (Express with express.json() first)', async () => {
    const t = makeAgent();
    const handler = createNodeHandler(t.agent);
    const port = await serve((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        (req as IncomingMessage & { body?: unknown }).body = JSON.parse(Buffer.concat(chunks).toString()) as unknown;
        handler(req, res);
      });
    });
    const reply = await call(port, shutdownCall({ reason: 'pre-parsed', confirm: true }));
    expect(reply.status).toBe(200);
  });

  // endless data: a framework's own parser (express.json() allows 100 kB) must not lift the 16 KiB limit.
  it('a body a framework already read is held to the 16 KiB limit too: 400 BODY_TOO_LARGE', async () => {
    const t = makeAgent();
    const handler = createNodeHandler(t.agent);
    const port = await serve((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        // Both shapes a framework leaves: parsed JSON (express.json) and raw text (express.text).
        (req as IncomingMessage & { body?: unknown }).body = req.headers['x-raw'] === '1' ? text : (JSON.parse(text) as unknown);
        handler(req, res);
      });
    });
    const big = { reason: 'x'.repeat(20 * 1024), confirm: true };
    for (const raw of ['0', '1']) {
      const reply = await call(port, shutdownCall(big, { ...AUTH, 'x-raw': raw }));
      expect(reply.status).toBe(400);
      expect(errorCode(reply)).toBe('BODY_TOO_LARGE');
    }
    expect(t.agent.shuttingDown()).toBe(false);
  });

  it('requireServiceTokenNode guards a route of your own, inline or as middleware', async () => {
    const { agent, lines } = makeAgent();
    const guard = requireServiceTokenNode(agent);
    const port = await serve((req, res) => {
      guard(req, res, () => {
        app(req, res);
      });
    });
    const refused = await call(port, { method: 'POST', path: '/admin/reload' });
    expect(refused.status).toBe(401);
    expect(errorCode(refused)).toBe('AUTH_REQUIRED');
    expect(lines.some((l) => l.obj.event === 'auth_refused' && l.obj.path === '/admin/reload')).toBe(true);
    const wrong = await call(port, { method: 'POST', path: '/admin/reload', headers: { authorization: 'Bearer service:nope' } });
    expect(errorCode(wrong)).toBe('AUTH_INVALID');
    const allowed = await call(port, { method: 'POST', path: '/admin/reload', headers: AUTH });
    expect(allowed.status).toBe(200);
    expect(allowed.text).toBe('app');
  });

  it('a client that goes away mid-body leaves the agent running and the server answering', async () => {
    const t = makeAgent();
    const handler = createNodeHandler(t.agent);
    let arrived = (): void => undefined;
    const reached = new Promise<void>((resolve) => (arrived = resolve));
    let closed: Promise<void> | undefined;
    const port = await serve((req, res) => {
      handler(req, res);
      closed = new Promise((resolve) => req.once('close', resolve));
      arrived();
    });
    const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: '/v1/system/shutdown', headers: { ...AUTH, 'content-length': '1000' } });
    req.on('error', () => undefined);
    req.write('{"reason":"x",');
    // Once the server has the request (14 of its 1000 bytes sent), the client goes away. The test
    // waits for the server to see it gone, then for the handler's reaction to settle (setImmediate
    // runs after every promise that close settled).
    await reached;
    req.destroy();
    await closed;
    await new Promise(setImmediate);
    expect(t.agent.shuttingDown()).toBe(false);
    expect((await call(port)).status).toBe(200);
  });
});
