import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { HttpClient } from '@drover/http';
import { createDaemonLogger } from '../logger.js';
import type { Logger } from '../logger.js';
import { Journal } from '../update/journal.js';
import { CheckinLoop } from './check-in.js';
import type { Credentials } from './credentials.js';

// The check-in loop against an overloaded manager: a real HTTP server answering 503 OVERLOADED with
// a Retry-After, and the loop's own waits measured on the wire; and against a manager that holds
// its check-ins (the command channel) and loses them: each cut costs one reconnection.

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A real HTTP server on 127.0.0.1 answering with `handler`; closed after the test. Answers its URL. */
async function serve(handler: Parameters<typeof createServer>[1]): Promise<{ server: Server; url: string }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => close(server));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

function close(server: Server): Promise<void> {
  return new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => {
      resolve();
    });
  });
}

/** A check-in loop against `managerUrl`, one HTTP attempt per check-in, so its own waits are what the server sees. */
async function loopAt(managerUrl: string, logger: Logger, options: { random: () => number; channelWaitSeconds?: number }): Promise<CheckinLoop> {
  const dir = await mkdtemp(join(tmpdir(), 'drover-checkin-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const http = new HttpClient({ userAgent: 'droverd/test', proxy: false, retry: { maxAttempts: 1 } });
  cleanups.push(() => http.close());
  return new CheckinLoop({
    http,
    credentials: { managerUrl, agentId: 'agent-1', credential: 'c'.repeat(43) } as Credentials,
    machineId: 'm'.repeat(64),
    journal: await Journal.open(join(dir, 'journal.json'), logger),
    daemonVersion: '0.5.0',
    agentVersion: () => Promise.resolve('1.0.0'),
    health: () => Promise.resolve({ status: 'healthy', version: '1.0.0', busy: false }),
    onCommands: () => Promise.resolve(),
    logger,
    backoffMaxMs: 300_000,
    ...options,
  });
}

describe('CheckinLoop', () => {
  it("waits out an overloaded manager's Retry-After, spread by up to half of it, before checking in again", async () => {
    const arrivals: number[] = [];
    const { url } = await serve((req, res) => {
      req.resume();
      arrivals.push(performance.now());
      if (arrivals.length <= 2) {
        res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '1' });
        res.end('{"error":{"code":"OVERLOADED","message":"The manager is overloaded."}}');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"commands":[],"nextCheckinSeconds":3600}');
    });
    const logger = createDaemonLogger({ level: 'error', destination: { write: () => undefined } });
    // Two draws per wait: the backoff's, then the Retry-After's spread.
    const randoms = [0, 0, 0, 0.999];
    const loop = await loopAt(url, logger, { random: () => randoms.shift() ?? 0.5 });
    const stop = new AbortController();
    const ran = loop.run(stop.signal);
    const until = performance.now() + 10_000;
    while (arrivals.length < 3 && performance.now() < until) await new Promise((resolve) => setTimeout(resolve, 20));
    stop.abort();
    await ran;
    expect(arrivals).toHaveLength(3);
    const [first = 0, second = 0, third = 0] = arrivals;
    // Spread 0: exactly the Retry-After (the backoff drew 0, and its floor of 500 ms is below).
    expect(second - first).toBeGreaterThanOrEqual(990);
    expect(second - first).toBeLessThan(1_400);
    // Spread 0.999: the Retry-After and nearly half of it again.
    expect(third - second).toBeGreaterThanOrEqual(1_480);
    expect(third - second).toBeLessThan(1_900);
  }, 15_000);

  it('a held check-in lost after a while costs one reconnection, never a step up the backoff; a refused one does step up', async () => {
    const arrivals: number[] = [];
    const { server, url } = await serve((req, res) => {
      req.resume();
      arrivals.push(performance.now());
      // Held for 1.2 s, then the connection is lost (a replica killed, a proxy's idle timeout).
      setTimeout(() => {
        res.socket?.destroy();
      }, 1_200);
    });
    const lines: { event?: string; failures?: number; retryInMs?: number }[] = [];
    const logger = createDaemonLogger({ level: 'warn', destination: { write: (line: string) => void lines.push(JSON.parse(line) as { event?: string }) } });
    const loop = await loopAt(url, logger, { channelWaitSeconds: 30, random: () => 0.999 });
    const stop = new AbortController();
    const ran = loop.run(stop.signal);
    const until = performance.now() + 15_000;
    while (arrivals.length < 4 && performance.now() < until) await new Promise((resolve) => setTimeout(resolve, 20));
    stop.abort();
    await ran;
    expect(arrivals.length).toBeGreaterThanOrEqual(4);
    // Every cut is a first failure: the wait stays at most the base (1 s), however many cuts in a row.
    const failed = lines.filter((l) => l.event === 'checkin.failed');
    expect(failed.length).toBeGreaterThanOrEqual(3);
    for (const line of failed) expect([line.failures, (line.retryInMs ?? 0) <= 1_000]).toEqual([1, true]);
    for (let i = 1; i < arrivals.length; i++) expect((arrivals[i] ?? 0) - (arrivals[i - 1] ?? 0)).toBeLessThan(1_200 + 1_000 + 400);
    // The manager gone (nothing listens): refused at once, so the failures count up.
    await close(server);
    const refused = await loopAt(url, logger, { channelWaitSeconds: 30, random: () => 0 });
    lines.length = 0;
    const stop2 = new AbortController();
    const ran2 = refused.run(stop2.signal);
    const until2 = performance.now() + 5_000;
    while (lines.filter((l) => l.event === 'checkin.failed').length < 3 && performance.now() < until2) await new Promise((resolve) => setTimeout(resolve, 20));
    stop2.abort();
    await ran2;
    expect(lines.filter((l) => l.event === 'checkin.failed').map((l) => l.failures).slice(0, 3)).toEqual([1, 2, 3]);
  }, 30_000);
});
