import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { expectRejection } from '../../../test/helpers/expect-error.js';
import { CliError, RemoteError } from '../src/errors.js';
import { ManagerClient, USER_AGENT, cliHttpDefaults, createCliHttp } from '../src/manager-client.js';

// A real server on 127.0.0.1:0 that answers from a script, one step per request.
type Step = (req: IncomingMessage, res: ServerResponse, body: string) => void;
let script: Step[] = [];
const seen: { method: string; url: string; headers: IncomingMessage['headers']; body: string }[] = [];
let server: Server;
let url: string;
const waits: number[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      const step = script.shift() ?? ((_q: IncomingMessage, r: ServerResponse) => r.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'));
      step(req, res, body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});
beforeEach(() => {
  script = [];
  seen.length = 0;
  waits.length = 0;
});

const client = (options: { token?: string; base?: string } = {}): ManagerClient =>
  new ManagerClient({ baseUrl: options.base ?? url, token: options.token, http: createCliHttp({ sleep: (ms) => Promise.resolve(void waits.push(ms)) }) });
const json = (status: number, body: unknown, headers: Record<string, string> = {}): Step => (_req, res) => res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));

describe('ManagerClient (the CLI\'s calls to a manager, over @drover/http)', () => {
  it('sends the token, a User-Agent and JSON, under the URL prefix', async () => {
    script = [json(201, { made: 1 })];
    expect(await client({ token: 'secret-token', base: `${url}/fleet/` }).json({ method: 'POST', path: '/v1/x', json: { a: 1 } })).toEqual({ made: 1 });
    expect(seen[0]).toMatchObject({ method: 'POST', url: '/fleet/v1/x', body: '{"a":1}' });
    expect(seen[0]?.headers).toMatchObject({ authorization: 'Bearer secret-token', 'user-agent': USER_AGENT, 'content-type': 'application/json' });
  });

  it('retries 408, 429 and 5xx with backoff, honouring Retry-After', async () => {
    script = [json(503, {}), json(429, {}, { 'retry-after': '2' }), json(408, {}), json(200, { ok: 1 })];
    expect(await client().json({ method: 'GET', path: '/r' })).toEqual({ ok: 1 });
    expect(seen).toHaveLength(4);
    // The Retry-After, plus a random part of up to half of it (so a fleet of callers spreads out).
    expect(waits[1]).toBeGreaterThanOrEqual(2000);
    expect(waits[1]).toBeLessThan(3000);
    expect([waits[0], waits[2]].every((ms) => ms !== undefined && ms >= 0 && ms <= cliHttpDefaults.backoffMaxMs)).toBe(true);
  });

  it('gives up after the retries with the manager\'s code, and never retries a refusal, a POST or a request marked not to be', async () => {
    script = Array.from({ length: 10 }, () => json(500, { error: { code: 'INTERNAL_ERROR', message: 'boom' } }));
    await expectRejection(client().json({ method: 'GET', path: '/fail' }), RemoteError, 'INTERNAL_ERROR');
    expect(seen).toHaveLength(cliHttpDefaults.maxAttempts);
    seen.length = 0;
    script = [json(403, { error: { code: 'ENROLLMENT_TOKEN_EXPIRED', message: 'expired\u001b[31m' } })];
    let caught: unknown;
    try {
      await client().json({ method: 'POST', path: '/x', json: {} });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(RemoteError);
    expect((caught as RemoteError).status).toBe(403);
    expect((caught as RemoteError).message).toBe('expired [31m');
    expect(seen).toHaveLength(1);
    seen.length = 0;
    script = [json(503, {}), json(200, {})];
    await expectRejection(client().json({ method: 'GET', path: '/once', retry: false }), CliError, 'HTTP_ERROR');
    expect(seen).toHaveLength(1);
    seen.length = 0;
    script = [json(503, {}), json(200, {})];
    await expectRejection(client().json({ method: 'POST', path: '/tokens', json: {} }), CliError, 'HTTP_ERROR');
    expect(seen).toHaveLength(1);
    seen.length = 0;
    script = [json(503, {}), json(200, { registered: true })];
    expect(await client().json({ method: 'POST', path: '/v1/releases', json: {}, idempotent: true })).toEqual({ registered: true });
    expect(seen).toHaveLength(2);
  });

  it('retries a streamed body with a fresh stream each attempt', async () => {
    script = [json(502, {}), json(200, { ok: true })];
    let made = 0;
    await client().json({ method: 'PUT', path: '/upload', body: () => { made += 1; return Readable.from([Buffer.from('bytes')]); } });
    expect(made).toBe(2);
    expect(seen.map((s) => s.body)).toEqual(['bytes', 'bytes']);
  });

  it('retries network errors, then reports NETWORK_ERROR', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    await expectRejection(client({ base: `http://127.0.0.1:${port}` }).json({ method: 'GET', path: '/' }), CliError, 'NETWORK_ERROR');
    expect(waits).toHaveLength(cliHttpDefaults.maxAttempts - 1);
  });

  it('refuses a non-drover answer, a URL that is not http(s), and a manager-named URL off the manager', async () => {
    script = [(_req, res) => res.writeHead(404, { 'content-type': 'text/html' }).end('<html>')];
    await expectRejection(client().json({ method: 'GET', path: '/' }), CliError, 'HTTP_ERROR');
    expect(() => new ManagerClient({ baseUrl: 'ftp://x' })).toThrow(CliError);
    await expectRejection(client().json({ method: 'GET', path: '//evil.example/x', fromOrigin: true }), CliError, 'HTTP_ERROR');
  });
});
