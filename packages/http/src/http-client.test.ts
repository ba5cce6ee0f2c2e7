import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { Readable } from 'node:stream';
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { afterEach, describe, expect, it } from 'vitest';
import { expectRejection } from '../../../test/helpers/expect-error.js';
import { HttpError } from './errors.js';
import { HttpClient, isTlsTrustError, userAgent, whatToCheck } from './http-client.js';
import type { HttpClientOptions, RetryEvent } from './http-client.js';

// Real servers on 127.0.0.1:0, one handler call per request, the request bodies recorded.
type Handler = (req: IncomingMessage, res: ServerResponse, n: number, body: string) => void;
interface Served {
  url: string;
  server: Server;
  seen: { method: string; url: string; headers: IncomingMessage['headers']; body: string }[];
}

const servers: Server[] = [];
const clients: HttpClient[] = [];

async function serve(handler: Handler): Promise<Served> {
  const seen: Served['seen'] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      handler(req, res, seen.length, body);
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, seen };
}

async function closedPort(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return `http://127.0.0.1:${port}`;
}

const waits: number[] = [];
const retries: RetryEvent[] = [];
function client(options: Partial<HttpClientOptions> = {}): HttpClient {
  const made = new HttpClient({
    userAgent: 'drover-test/1.0.0',
    proxy: false,
    random: () => 0.5,
    sleep: (ms) => Promise.resolve(void waits.push(ms)),
    onRetry: (event) => retries.push(event),
    ...options,
  });
  clients.push(made);
  return made;
}

afterEach(async () => {
  waits.length = 0;
  retries.length = 0;
  await Promise.all(clients.splice(0).map((c) => c.close()));
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

const status = (code: number, headers: Record<string, string> = {}, body = '{}'): Handler => (_req, res) => res.writeHead(code, { 'content-type': 'application/json', ...headers }).end(body);
const script = (...steps: Handler[]): Handler => (req, res, n, body) => {
  (steps[n - 1] ?? status(200, {}, '{"ok":true}'))(req, res, n, body);
};

describe('HttpClient: what every request carries', () => {
  it('sends the User-Agent, JSON with its content type, and parses a JSON answer', async () => {
    const { url, seen } = await serve(status(201, {}, '{"made":1}'));
    const response = await client().json({ method: 'POST', url: `${url}/v1/x`, json: { a: 1 } });
    expect(response).toMatchObject({ status: 201, body: { made: 1 } });
    expect(seen[0]).toMatchObject({ method: 'POST', url: '/v1/x', body: '{"a":1}' });
    expect(seen[0]?.headers).toMatchObject({ 'user-agent': 'drover-test/1.0.0', 'content-type': 'application/json', accept: 'application/json' });
  });

  it('names the component, its version, Node and the platform in userAgent()', () => {
    expect(userAgent('droverd', '1.2.3')).toBe(`droverd/1.2.3 (node ${process.version}; ${process.platform}-${process.arch})`);
  });

  it('stops reading an answer larger than its limit (RESPONSE_TOO_LARGE)', async () => {
    const { url } = await serve((_req, res) => res.writeHead(200).end(Buffer.alloc(100_000, 0x61)));
    await expectRejection(client().json({ method: 'GET', url, maxBytes: 1000 }), HttpError, 'RESPONSE_TOO_LARGE');
    await expectRejection(client({ maxResponseBytes: 1000 }).request({ method: 'GET', url }), HttpError, 'RESPONSE_TOO_LARGE');
  });

  it('refuses a URL that is not http(s) (URL_INVALID)', async () => {
    await expectRejection(client().request({ method: 'GET', url: 'ftp://example.test/x' }), HttpError, 'URL_INVALID');
    await expectRejection(client().request({ method: 'GET', url: 'not a url' }), HttpError, 'URL_INVALID');
  });
});

describe('HttpClient: the retry policy', () => {
  it('retries 503, 429 and 408 on an idempotent request, then returns the answer', async () => {
    const { url, seen } = await serve(script(status(503), status(429), status(408), status(200, {}, '{"n":4}')));
    expect(await client().json({ method: 'GET', url })).toMatchObject({ status: 200, body: { n: 4 } });
    expect(seen).toHaveLength(4);
    expect(retries.map((r) => [r.attempt, r.status])).toEqual([[1, 503], [2, 429], [3, 408]]);
  });

  it('waits a jittered exponential backoff, or the Retry-After when longer, capped and spread', async () => {
    const { url } = await serve(script(status(503), status(503, { 'retry-after': '2' }), status(503, { 'retry-after': '3600' }), status(200)));
    await client({ retry: { maxAttempts: 4, backoffBaseMs: 100, backoffMaxMs: 1000, retryAfterMaxMs: 5000 } }).request({ method: 'GET', url });
    // random() = 0.5: half of min(1000, 100 * 2^attempt); Retry-After 2 s and a quarter of it; Retry-After 1 h
    // cut to 5 s, and a quarter of that.
    expect(waits).toEqual([50, 2500, 6250]);
  });

  it('returns the last 5xx, body and all, once the attempts are spent', async () => {
    const { url, seen } = await serve(status(500, {}, '{"error":{"code":"INTERNAL_ERROR","message":"boom"}}'));
    const response = await client({ retry: { maxAttempts: 3 } }).json({ method: 'GET', url });
    expect(response).toMatchObject({ status: 500, body: { error: { code: 'INTERNAL_ERROR' } } });
    expect(seen).toHaveLength(3);
  });

  it('never retries another 4xx', async () => {
    const { url, seen } = await serve(status(401, {}, '{"error":{"code":"NO"}}'));
    expect((await client().json({ method: 'GET', url })).status).toBe(401);
    expect(seen).toHaveLength(1);
  });

  it('never repeats a POST unless it carries an Idempotency-Key or its caller declares it idempotent', async () => {
    const plain = await serve(status(503));
    expect((await client().request({ method: 'POST', url: plain.url, json: {} })).status).toBe(503);
    expect(plain.seen).toHaveLength(1);

    const keyed = await serve(script(status(503), status(200)));
    expect((await client().request({ method: 'POST', url: keyed.url, json: {}, headers: { 'Idempotency-Key': 'k-1' } })).status).toBe(200);
    expect(keyed.seen.map((s) => s.headers['idempotency-key'])).toEqual(['k-1', 'k-1']);

    const declared = await serve(script(status(502), status(200)));
    expect((await client().request({ method: 'POST', url: declared.url, json: { a: 1 }, idempotent: true })).status).toBe(200);
    expect(declared.seen.map((s) => s.body)).toEqual(['{"a":1}', '{"a":1}']);
  });

  it('sends a request marked retry: false once, whatever its method', async () => {
    const { url, seen } = await serve(status(503));
    expect((await client().request({ method: 'GET', url, retry: false })).status).toBe(503);
    expect(seen).toHaveLength(1);
  });

  it('remakes a streamed body for each attempt', async () => {
    const { url, seen } = await serve(script(status(502), status(200)));
    let made = 0;
    const body = (): Readable => {
      made += 1;
      return Readable.from([Buffer.from('bytes')]);
    };
    expect((await client().request({ method: 'PUT', url, body, headers: { 'content-length': '5' } })).status).toBe(200);
    expect(made).toBe(2);
    expect(seen.map((s) => s.body)).toEqual(['bytes', 'bytes']);
    expect(waits).toHaveLength(1);
  });

  it('retries network errors, then fails with NETWORK_ERROR carrying the last one as cause', async () => {
    const url = await closedPort();
    let caught: unknown;
    try {
      await client({ retry: { maxAttempts: 3 } }).request({ method: 'GET', url: `${url}/x?sig=SECRET` });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(HttpError);
    expect((caught as HttpError).code).toBe('NETWORK_ERROR');
    expect(((caught as HttpError).cause as { code?: string }).code).toBe('ECONNREFUSED');
    // the query string (a presigned URL's signature) never reaches a message
    expect((caught as HttpError).message).not.toContain('SECRET');
    expect(retries.map((r) => r.attempt)).toEqual([1, 2]);
    expect(retries.every((r) => !r.url.includes('SECRET'))).toBe(true);
  });

  it('retries a streamed body after a network error too, and gives up with NETWORK_ERROR', async () => {
    const url = await closedPort();
    let made = 0;
    await expectRejection(
      client({ retry: { maxAttempts: 2 } }).request({ method: 'PUT', url, body: () => ((made += 1), Readable.from([Buffer.from('x')])) }),
      HttpError,
      'NETWORK_ERROR',
    );
    expect(made).toBe(2);
  });

  it('stops waiting between attempts as soon as the caller aborts', async () => {
    const url = await closedPort();
    const controller = new AbortController();
    const http = client({ sleep: undefined, retry: { maxAttempts: 5, backoffBaseMs: 60_000, backoffMaxMs: 60_000 } });
    const started = Date.now();
    const pending = http.request({ method: 'GET', url, signal: controller.signal });
    setTimeout(() => {
      controller.abort();
    }, 200);
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('stops waiting on a Retry-After as soon as the caller aborts', async () => {
    const { url, seen } = await serve(status(503, { 'retry-after': '60' }));
    const controller = new AbortController();
    const pending = client({ sleep: undefined }).request({ method: 'GET', url, signal: controller.signal });
    setTimeout(() => {
      controller.abort();
    }, 300);
    const started = Date.now();
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(seen).toHaveLength(1);
  });
});

describe('HttpClient: the timeout policy', () => {
  it('times out a server that never answers (headers timeout), and does not hang', async () => {
    const { url } = await serve(() => undefined);
    const started = Date.now();
    await expectRejection(client({ retry: { maxAttempts: 1 }, timeouts: { headersMs: 300 } }).json({ method: 'GET', url }), HttpError, 'NETWORK_ERROR');
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('ends a request at its overall deadline, retries and waits included (DEADLINE_EXCEEDED)', async () => {
    const { url } = await serve(status(503));
    const started = Date.now();
    await expectRejection(client({ sleep: undefined, retry: { maxAttempts: 100, backoffBaseMs: 200, backoffMaxMs: 200 } }).request({ method: 'GET', url, deadlineMs: 700 }), HttpError, 'DEADLINE_EXCEEDED');
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it('keeps the deadline after a garbage collection', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const { url } = await serve(() => undefined); // never answers
    const started = Date.now();
    // Nothing but the request holds its deadline; collections run while it waits.
    const outcome = expectRejection(client({ retry: { maxAttempts: 1 }, timeouts: { headersMs: 60_000 } }).request({ method: 'GET', url, deadlineMs: 500 }), HttpError, 'DEADLINE_EXCEEDED');
    for (let i = 0; i < 5; i += 1) {
      gc();
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await outcome;
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});

describe('HttpClient: proxies from the environment', () => {
  it('goes through HTTP_PROXY (a CONNECT tunnel), except to hosts in NO_PROXY, and never with proxy: false', async () => {
    const target = await serve(status(200, {}, '{"from":"target"}'));
    // A forward proxy: it records each CONNECT and tunnels it to the target.
    const proxy = await serve(status(405));
    const tunnels: string[] = [];
    proxy.server.on('connect', (req: IncomingMessage, socket: Socket) => {
      tunnels.push(req.url ?? '');
      const [host, port] = (req.url ?? '').split(':');
      const upstream = connect(Number(port), host ?? '', () => {
        socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        upstream.pipe(socket).pipe(upstream);
      });
      socket.on('error', () => upstream.destroy());
      upstream.on('error', () => socket.destroy());
    });
    const host = new URL(target.url).host;
    expect((await client({ proxy: true, env: { HTTP_PROXY: proxy.url } }).json({ method: 'GET', url: `${target.url}/a` })).body).toEqual({ from: 'target' });
    expect(tunnels).toEqual([host]);
    expect((await client({ proxy: true, env: { HTTP_PROXY: proxy.url, NO_PROXY: '127.0.0.1' } }).json({ method: 'GET', url: `${target.url}/b` })).body).toEqual({ from: 'target' });
    expect((await client({ proxy: false, env: { HTTP_PROXY: proxy.url } }).json({ method: 'GET', url: `${target.url}/c` })).body).toEqual({ from: 'target' });
    expect(tunnels).toEqual([host]);
    expect(target.seen.map((s) => s.url)).toEqual(['/a', '/b', '/c']);
  });
});

describe('HttpClient.stream', () => {
  it('hands the body over unread, once, and reports no answer as NETWORK_ERROR', async () => {
    const { url, seen } = await serve((_req, res) => res.writeHead(503).end('busy'));
    const response = await client().stream({ url, headers: { range: 'bytes=5-' } });
    expect(response.status).toBe(503);
    expect(await response.body.text()).toBe('busy');
    expect(seen).toHaveLength(1);
    expect(seen[0]?.headers).toMatchObject({ range: 'bytes=5-', 'user-agent': 'drover-test/1.0.0' });
    await expectRejection(client().stream({ url: await closedPort() }), HttpError, 'NETWORK_ERROR');
  });
});

describe('what a request that got no answer should check', () => {
  it('names an untrusted TLS certificate and NODE_EXTRA_CA_CERTS, a wrong host name, and otherwise the network', () => {
    for (const code of ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'CERT_HAS_EXPIRED']) {
      expect(isTlsTrustError(code)).toBe(true);
      expect(whatToCheck(code)).toContain('NODE_EXTRA_CA_CERTS');
    }
    expect(whatToCheck('ERR_TLS_CERT_ALTNAME_INVALID')).toContain('host name');
    for (const code of ['ECONNREFUSED', undefined, 42]) {
      expect(isTlsTrustError(code)).toBe(false);
      expect(whatToCheck(code)).toContain('HTTPS_PROXY');
    }
  });
});
