// Real servers on 127.0.0.1:0 for each adapter, a plain node:http client, and an agent whose logs
// and exit calls are captured. Shared by the adapter, fuzz and logging tests.
import { createServer, request as httpRequest } from 'node:http';
import type { IncomingHttpHeaders, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import Fastify from 'fastify';
import { createAgent, createNodeHandler, createWebHandler, droverAgentPlugin } from '../src/index.js';
import type { Agent, AgentOptions, Logger } from '../src/index.js';

export const TOKEN = 'kq3Vt1yq0f6n0m7xS2Zr8W4pB9cD1eF3gH5iJ7kL9mA';
export const AUTH = { authorization: `Bearer service:${TOKEN}` };

export interface LogLine {
  level: 'info' | 'warn' | 'error';
  obj: Record<string, unknown>;
  msg: string;
}

export function captureLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at =
    (level: LogLine['level']) =>
    (obj: Record<string, unknown>, msg: string): void => {
      lines.push({ level, obj, msg });
    };
  return { logger: { info: at('info'), warn: at('warn'), error: at('error') }, lines };
}

export interface TestAgent {
  agent: Agent;
  lines: LogLine[];
  exits: number[];
  shutdowns: { reason: string; at: number; drained: boolean; busyWith: string[] }[];
}

export function makeAgent(overrides: Partial<AgentOptions> = {}): TestAgent {
  const { logger, lines } = captureLogger();
  const exits: number[] = [];
  const shutdowns: TestAgent['shutdowns'] = [];
  const agent = createAgent({
    version: '1.2.3',
    serviceToken: TOKEN,
    drainTimeoutMs: 2_000,
    logger,
    exit: (code) => exits.push(code),
    onShutdown: (reason, info) => {
      shutdowns.push({ reason, at: performance.now(), drained: info.drained, busyWith: info.busyWith });
    },
    ...overrides,
  });
  return { agent, lines, exits, shutdowns };
}

export interface Running {
  port: number;
  close(): Promise<void>;
}

async function listen(server: Server): Promise<Running> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          resolve();
        });
      }),
  };
}

export function startNode(agent: Agent): Promise<Running> {
  const handler = createNodeHandler(agent, { fallthrough: false });
  return listen(createServer((req, res) => void handler(req, res)));
}

// What Hono on @hono/node-server, Bun or Deno do: turn the request into a Web Request, write the Response back.
export function startWeb(agent: Agent): Promise<Running> {
  const handler = createWebHandler(agent);
  const server = createServer((req, res) => {
    const method = req.method ?? 'GET';
    const headers = new Headers();
    for (const [key, value] of Object.entries(req.headers)) {
      if (typeof value === 'string') headers.set(key, value);
      else if (Array.isArray(value)) for (const v of value) headers.append(key, v);
    }
    const hasBody = method !== 'GET' && method !== 'HEAD';
    let request: Request;
    try {
      request = new Request(`http://127.0.0.1${req.url ?? '/'}`, {
        method,
        headers,
        ...(hasBody ? { body: Readable.toWeb(req) as ReadableStream<Uint8Array>, duplex: 'half' } : {}),
      });
    } catch {
      // Not expressible as a Web Request (a TRACE, say): a real runtime never hands one over.
      res.destroy();
      return;
    }
    void handler(request).then(async (response) => {
      const body = Buffer.from(await response.arrayBuffer());
      const out: Record<string, string> = {};
      response.headers.forEach((value, key) => {
        out[key] = value;
      });
      res.writeHead(response.status, out).end(body);
    });
  });
  return listen(server);
}

export async function startFastify(agent: Agent): Promise<Running> {
  const app = Fastify({ logger: false });
  await app.register(droverAgentPlugin, { agent });
  await app.listen({ port: 0, host: '127.0.0.1' });
  return {
    port: (app.server.address() as AddressInfo).port,
    close: async () => {
      app.server.closeAllConnections();
      await app.close();
    },
  };
}

export const adapters = [
  { name: 'node:http', start: startNode },
  { name: 'web', start: startWeb },
  { name: 'fastify', start: startFastify },
] as const;

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  json: unknown;
}

export interface Call {
  method?: string;
  path?: string;
  headers?: Record<string, string | string[]>;
  body?: string | Uint8Array;
  /** Send the body chunked (no Content-Length). */
  chunked?: boolean;
}

/** One request on a fresh connection; resolves with the status and body, never hangs past `timeoutMs`. */
export function call(port: number, c: Call = {}, timeoutMs = 10_000): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | string[]> = { ...c.headers };
    // Node sends a DELETE or OPTIONS body unframed unless told, so the framing is always explicit.
    if (c.body !== undefined) {
      if (c.chunked === true) headers['transfer-encoding'] = 'chunked';
      else headers['content-length'] = String(Buffer.byteLength(c.body));
    }
    const req = httpRequest(
      { host: '127.0.0.1', port, method: c.method ?? 'GET', path: c.path ?? '/v1/system/health', headers, agent: false, timeout: timeoutMs },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = text === '' ? undefined : JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`request timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
    if (c.body !== undefined) req.write(c.body);
    req.end();
  });
}

export function shutdownCall(body: unknown, headers: Record<string, string> = AUTH): Call {
  return { method: 'POST', path: '/v1/system/shutdown', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) };
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves once `predicate` holds, polling; rejects after `timeoutMs`. */
export async function until(predicate: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!predicate()) {
    if (performance.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(5);
  }
}

/** A critical section that runs until `release()` is called. */
export function hold(agent: Agent, name: string): { release: () => void; done: Promise<void> } {
  let release = (): void => undefined;
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  const done = agent.critical(name, () => gate);
  return { release, done };
}

export function errorCode(reply: Reply): string | undefined {
  const body = reply.json as { error?: { code?: unknown } } | undefined;
  return typeof body?.error?.code === 'string' ? body.error.code : undefined;
}
