import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { HttpClient } from '@drover/http';
import { Ed25519PrivateKey } from '@drover/protocol';
import { createDaemonLogger } from '../logger.js';
import { freePort } from '../../../test/helpers/ports.js';
import { enroll } from './enroll.js';
import type { EnrollInput } from './enroll.js';

// When `droverd run` sends an enrollment again (decision 0050): only while the manager provably did
// not take it (the connection was refused; 503 OVERLOADED, waiting its Retry-After), never after a
// request that may have reached it. Real HTTP servers on 127.0.0.1 answer as a manager would; every
// request they receive is counted, since a second one that arrives spends a second seat.

const managerKey = Ed25519PrivateKey.generate();
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** A server on 127.0.0.1 (`port` 0: any); answers with `handlers` in turn, the last one from then on. */
async function serve(handlers: Handler[], port = 0): Promise<{ url: string; received: () => number }> {
  let received = 0;
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      received++;
      (handlers[Math.min(received, handlers.length) - 1] ?? handlers[0])?.(req, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => { resolve(); });
      }),
  );
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received: () => received };
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}): Handler => (_req, res) => {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
};
const enrolled = json(200, {
  agentId: 'agent-1',
  credential: 'c'.repeat(43),
  serviceToken: 's'.repeat(43),
  managerKeys: [{ keyid: managerKey.publicKey.keyid, publicKey: managerKey.publicKey.toBase64() }],
  checkinIntervalSeconds: 60,
});
const overloaded = json(503, { error: { code: 'OVERLOADED', message: 'The manager is overloaded.' } }, { 'retry-after': '2' });

function input(managerUrl: string, waits: number[], onWait: () => Promise<void> = () => Promise.resolve()): { input: EnrollInput; logs: string[] } {
  const logs: string[] = [];
  // One attempt per call at the HTTP layer: the waits measured are enroll()'s own.
  const http = new HttpClient({ userAgent: 'droverd/test', proxy: false, retry: { maxAttempts: 1 } });
  cleanups.push(() => http.close());
  return {
    logs,
    input: {
      http,
      managerUrl,
      enrollmentToken: 'e'.repeat(43),
      pinnedKey: managerKey.publicKey.toBase64(),
      tofu: false,
      machineId: 'a'.repeat(64),
      platform: 'linux-x64',
      agentVersion: '1.0.0',
      daemonVersion: '0.5.0',
      inventory: () => Promise.resolve({}),
      logger: createDaemonLogger({ destination: { write: (line: string) => logs.push(line) } }),
      untilTaken: true,
      wait: async (ms) => {
        waits.push(ms);
        await onWait();
      },
    },
  };
}

describe('enroll: sent again only while the manager did not take it (decision 0050)', () => {
  it('a refused connection: waits with backoff and enrolls once the manager listens; the manager sees one request', async () => {
    const port = await freePort();
    const waits: number[] = [];
    let manager: { received: () => number } | undefined;
    const { input: req, logs } = input(`http://127.0.0.1:${port}`, waits, async () => {
      // The manager comes up during the third wait.
      if (waits.length === 3) manager = await serve([enrolled], port);
    });
    const credentials = await enroll(req);
    expect(credentials).toMatchObject({ agentId: 'agent-1', trust: 'pinned' });
    expect(manager?.received()).toBe(1);
    expect(waits).toHaveLength(3);
    // Half to all of 1 s, 2 s, 4 s.
    for (const [i, ms] of waits.entries()) {
      expect(ms).toBeGreaterThanOrEqual(500 * 2 ** i);
      expect(ms).toBeLessThanOrEqual(1000 * 2 ** i);
    }
    const retries = logs.map((line) => JSON.parse(line) as { event?: string; reason?: string; level?: unknown }).filter((l) => l.event === 'enroll.retry');
    expect(retries.map((l) => l.reason)).toEqual(['ECONNREFUSED', 'ECONNREFUSED', 'ECONNREFUSED']);
    expect(logs.join('\n')).not.toContain('e'.repeat(43));
  });

  it('503 OVERLOADED (shed before any handler): waits at least its Retry-After, then enrolls', async () => {
    const manager = await serve([overloaded, overloaded, enrolled]);
    const waits: number[] = [];
    expect(await enroll(input(manager.url, waits).input)).toMatchObject({ agentId: 'agent-1' });
    expect(manager.received()).toBe(3);
    expect(waits).toHaveLength(2);
    for (const ms of waits) expect(ms).toBeGreaterThanOrEqual(2000);
  });

  it('any other answer or failure is final: another 503, a refusal, a connection cut after the request was sent', async () => {
    const unavailable = await serve([json(503, { error: { code: 'STORE_UNAVAILABLE', message: 'The store is unavailable.' } })]);
    const refused = await serve([json(403, { error: { code: 'ENROLLMENT_TOKEN_INVALID', message: 'The enrollment token is not valid.' } })]);
    const cut = await serve([(req) => req.socket.destroy()]);
    for (const [manager, code] of [[unavailable, 'ENROLLMENT_REFUSED'], [refused, 'ENROLLMENT_REFUSED'], [cut, 'MANAGER_UNREACHABLE']] as const) {
      const waits: number[] = [];
      await expect(enroll(input(manager.url, waits).input)).rejects.toMatchObject({ code });
      expect([manager.received(), waits]).toEqual([1, []]);
    }
  });

  it('without untilTaken (`droverd enroll`): one attempt, MANAGER_UNREACHABLE at once', async () => {
    const waits: number[] = [];
    const { input: req } = input(`http://127.0.0.1:${await freePort()}`, waits);
    await expect(enroll({ ...req, untilTaken: false })).rejects.toMatchObject({ code: 'MANAGER_UNREACHABLE', message: expect.stringContaining('ECONNREFUSED') as unknown });
    expect(waits).toEqual([]);
  });
});
