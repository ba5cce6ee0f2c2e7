import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { expectRejection } from '../../test/helpers/expect-error.js';
import { DaemonError } from './errors.js';
import { HttpClient, isRetryableStatus, managerEndpoint } from './http.js';

type Handler = (req: IncomingMessage, res: ServerResponse, n: number) => void;

async function serve(handler: Handler): Promise<{ url: string; server: Server; requests: IncomingMessage[] }> {
  const requests: IncomingMessage[] = [];
  const server = createServer((req, res) => {
    requests.push(req);
    handler(req, res, requests.length);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (typeof address !== 'object' || address === null) throw new Error('no address');
  return { url: `http://127.0.0.1:${address.port}`, server, requests };
}

describe('HttpClient (all outbound HTTP)', () => {
  const servers: Server[] = [];
  const clients: HttpClient[] = [];
  const client = (options: Partial<ConstructorParameters<typeof HttpClient>[0]> = {}): HttpClient => {
    const c = new HttpClient({ userAgent: 'droverd/test', random: () => 0, proxy: false, ...options });
    clients.push(c);
    return c;
  };
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
  });

  it('retries 503, 429, 408 and succeeds; sends its User-Agent and JSON', async () => {
    const statuses = [503, 429, 408, 200];
    const { url, server, requests } = await serve((_req, res, n) => {
      res.writeHead(statuses[n - 1] ?? 200, { 'content-type': 'application/json' }).end(JSON.stringify({ n }));
    });
    servers.push(server);
    const response = await client({ maxAttempts: 4 }).json({ method: 'POST', url, json: { a: 1 } });
    expect(response).toMatchObject({ status: 200, body: { n: 4 } });
    expect(requests.length).toBe(4);
    expect(requests[0]?.headers['user-agent']).toBe('droverd/test');
    expect(requests[0]?.headers['content-type']).toBe('application/json');
  });

  it('never retries other 4xx', async () => {
    const { url, server, requests } = await serve((_req, res) => {
      res.writeHead(401).end('{"error":{"code":"NO"}}');
    });
    servers.push(server);
    const response = await client().json({ method: 'GET', url });
    expect(response.status).toBe(401);
    expect(requests.length).toBe(1);
  });

  it('returns the last 5xx once the attempts are spent', async () => {
    const { url, server, requests } = await serve((_req, res) => {
      res.writeHead(500).end();
    });
    servers.push(server);
    expect((await client({ maxAttempts: 3 }).json({ method: 'GET', url })).status).toBe(500);
    expect(requests.length).toBe(3);
  });

  it('honours Retry-After on a 503', async () => {
    const { url, server } = await serve((_req, res, n) => {
      if (n === 1) res.writeHead(503, { 'retry-after': '1' }).end();
      else res.writeHead(200).end('{}');
    });
    servers.push(server);
    const started = Date.now();
    await client().json({ method: 'GET', url });
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
  });

  it('retries network errors, then fails with MANAGER_UNREACHABLE', async () => {
    const { url, server } = await serve(() => undefined);
    await new Promise((resolve) => server.close(resolve)); // nothing listens there any more
    await expectRejection(client({ maxAttempts: 2 }).json({ method: 'GET', url }), DaemonError, 'MANAGER_UNREACHABLE');
  });

  it('times out a server that never answers (headers timeout), and does not hang', async () => {
    const { url, server } = await serve(() => undefined);
    servers.push(server);
    const started = Date.now();
    await expectRejection(client({ maxAttempts: 1, headersTimeoutMs: 300 }).json({ method: 'GET', url }), DaemonError, 'MANAGER_UNREACHABLE');
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('stops reading a response larger than its limit (RESPONSE_TOO_LARGE)', async () => {
    const { url, server } = await serve((_req, res) => {
      res.writeHead(200).end(Buffer.alloc(100_000, 0x61));
    });
    servers.push(server);
    await expectRejection(client().json({ method: 'GET', url, maxBytes: 1000 }), DaemonError, 'RESPONSE_TOO_LARGE');
  });

  it('classifies statuses as the retry rule says', () => {
    expect([408, 429, 500, 502, 503, 504].every(isRetryableStatus)).toBe(true);
    expect([200, 400, 401, 403, 404, 409, 426].some(isRetryableStatus)).toBe(false);
  });
});

describe('managerEndpoint', () => {
  it('appends the route to a manager served at the root or under a path, with or without a trailing slash', () => {
    expect(managerEndpoint('https://m.example:8443', '/v1/agents/enroll').href).toBe('https://m.example:8443/v1/agents/enroll');
    expect(managerEndpoint('https://m.example:8443/', '/v1/agents/enroll').href).toBe('https://m.example:8443/v1/agents/enroll');
    expect(managerEndpoint('https://ops.example/drover', '/v1/agents/a-1/checkin').href).toBe('https://ops.example/drover/v1/agents/a-1/checkin');
    expect(managerEndpoint('https://ops.example/drover//', '/v1/agents/enroll').href).toBe('https://ops.example/drover/v1/agents/enroll');
    expect(managerEndpoint('https://ops.example/drover?x=1#y', '/v1/agents/enroll').href).toBe('https://ops.example/drover/v1/agents/enroll');
  });
});
