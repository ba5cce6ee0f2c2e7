import { connect } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../logger.js';
import { admittingServer } from './admission.js';
import type { AdmissionOptions } from './admission.js';

// The shed path on a real server and real sockets: raw HTTP/1.1 so what goes over the wire
// (status line, Retry-After, Connection: close) is what is asserted.

const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const stop of stops.splice(0)) await stop();
});

async function serve(options: AdmissionOptions, onRequest: (url: string) => void = () => undefined, minBurst = 1): Promise<{ port: number; counts: () => { shedBusy: number; shedConnections: number }; accepted: (n: number) => Promise<void> }> {
  const admitted = admittingServer(
    (req, res) => {
      onRequest(req.url ?? '');
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('served');
    },
    options,
    silentLogger(),
    minBurst,
  );
  await new Promise<void>((resolve) => admitted.server.listen(0, '127.0.0.1', resolve));
  stops.push(
    () =>
      new Promise<void>((resolve) => {
        admitted.server.closeAllConnections();
        admitted.server.close(() => {
          resolve();
        });
      }),
  );
  let connections = 0;
  admitted.server.on('connection', () => (connections += 1));
  const accepted = async (n: number): Promise<void> => {
    while (connections < n) await new Promise((resolve) => setTimeout(resolve, 5));
  };
  return { port: (admitted.server.address() as AddressInfo).port, counts: admitted.counts, accepted };
}

/** Opens a connection, sends `requests` raw, and resolves with all it read until the server closed or `ms` passed. */
function exchange(port: number, requests: string, ms = 2_000): { socket: Socket; connected: Promise<void>; answer: Promise<{ text: string; closedByServer: boolean }> } {
  const socket = connect(port, '127.0.0.1');
  const connected = new Promise<void>((resolve) => socket.once('connect', resolve));
  const answer = new Promise<{ text: string; closedByServer: boolean }>((resolve) => {
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ text, closedByServer: false });
    }, ms);
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.once('end', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ text, closedByServer: true });
    });
  });
  if (requests !== '') void connected.then(() => socket.write(requests));
  return { socket, connected, answer };
}

const get = (path: string): string => `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`;
// A check-in with nothing to report (shed first), and one reporting an update (X-Update-Nonce: shed last).
const CHECKIN = '/v1/agents/agent-1/checkin';
const checkin = (headers = ''): string => `POST ${CHECKIN} HTTP/1.1\r\nHost: x\r\n${headers}Content-Length: 0\r\n\r\n`;

describe('admission', () => {
  it('answers a connection beyond maxConnections 503 OVERLOADED with Retry-After and closes it, /healthz excepted', async () => {
    const { port, counts, accepted } = await serve({ maxEventLoopBlockMs: 0, maxConnections: 2, retryAfterSeconds: 7 });
    const first = exchange(port, get('/v1/x'), 500);
    const second = exchange(port, get('/v1/x'), 500);
    await Promise.all([first.connected, second.connected]);
    const third = exchange(port, get('/v1/agents/a/checkin'));
    const thirdAnswer = await third.answer;
    expect(thirdAnswer.text).toMatch(/^HTTP\/1\.1 503 /);
    expect(thirdAnswer.text).toMatch(/\r\nretry-after: 7\r\n/i);
    expect(thirdAnswer.text).toMatch(/\r\nconnection: close\r\n/i);
    const refusal = JSON.parse(thirdAnswer.text.split('\r\n\r\n')[1] ?? '') as { error: { code: string; message: string } };
    expect(refusal.error.code).toBe('OVERLOADED');
    expect(refusal.error.message).toContain('too many connections');
    expect(thirdAnswer.closedByServer).toBe(true);
    // The connections within the cap were served.
    expect((await first.answer).text).toMatch(/^HTTP\/1\.1 200 /);
    expect((await second.answer).text).toMatch(/^HTTP\/1\.1 200 /);
    // Liveness is answered whatever the load, on a connection over the cap too.
    const a = exchange(port, '', 1_000);
    const b = exchange(port, '', 1_000);
    await Promise.all([a.connected, b.connected]);
    await accepted(5);
    const health = await exchange(port, get('/drover/healthz'), 500).answer;
    expect(health.text).toMatch(/^HTTP\/1\.1 200 /);
    expect(counts()).toEqual({ shedBusy: 0, shedConnections: 1 });
  });

  it('sheds the requests read in a turn of the event loop that has run past maxEventLoopBlockMs, and keeps their connections', async () => {
    const { port, counts, accepted } = await serve({ maxEventLoopBlockMs: 100, maxConnections: 0, retryAfterSeconds: 3 }, (url) => {
      // The first request holds the loop for 400 ms, as working through a burst does.
      if (url === '/block') {
        const until = Date.now() + 400;
        while (Date.now() < until);
      }
    });
    const blocker = exchange(port, '', 1_500);
    const others = Array.from({ length: 5 }, () => exchange(port, '', 1_500));
    await Promise.all([blocker, ...others].map((o) => o.connected));
    await accepted(6);
    // All six requests are in the server's buffers before its next turn, the blocking one first:
    // the server reads them in one turn, and the five after the block are shed.
    blocker.socket.write(get('/block'));
    for (const other of others) other.socket.write(checkin());
    await new Promise((resolve) => setTimeout(resolve, 600));
    // A shed connection stays open: the same socket's next request is served.
    for (const other of others) other.socket.write(checkin());
    const answers = await Promise.all(others.map((o) => o.answer));
    expect((await blocker.answer).text).toMatch(/^HTTP\/1\.1 200 /);
    for (const answer of answers) {
      const statuses = [...answer.text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => m[1]);
      expect(statuses).toEqual(['503', '200']);
      expect(answer.text).toMatch(/\r\nretry-after: 3\r\n/i);
      expect(answer.text).not.toMatch(/\r\nconnection: close\r\n/i);
    }
    expect(counts()).toEqual({ shedBusy: 5, shedConnections: 0 });
  });

  it('does not shed a few requests around one slow step (a long fsync is not overload): a burst is at least 32 requests in the turn', async () => {
    const { port, counts, accepted } = await serve(
      { maxEventLoopBlockMs: 100, maxConnections: 0, retryAfterSeconds: 3 },
      (url) => {
        if (url === '/block') {
          const until = Date.now() + 400;
          while (Date.now() < until);
        }
      },
      32,
    );
    const blocker = exchange(port, '', 1_000);
    const others = Array.from({ length: 5 }, () => exchange(port, '', 1_000));
    await Promise.all([blocker, ...others].map((o) => o.connected));
    await accepted(6);
    blocker.socket.write(get('/block'));
    for (const other of others) other.socket.write(get('/later'));
    for (const answer of await Promise.all(others.map((o) => o.answer))) expect(answer.text).toMatch(/^HTTP\/1\.1 200 /);
    expect(counts()).toEqual({ shedBusy: 0, shedConnections: 0 });
  });

  it('sheds check-ins with nothing to report first; reports of an update and operator calls only past four times the limit, with Retry-After 1', async () => {
    let blockMs = 250;
    const { port, counts, accepted } = await serve({ maxEventLoopBlockMs: 100, maxConnections: 0, retryAfterSeconds: 3 }, (url) => {
      if (url === '/block') {
        const until = Date.now() + blockMs;
        while (Date.now() < until);
      }
    });
    let opened = 0;
    const round = async (): Promise<string[][]> => {
      const blocker = exchange(port, '', 1_000);
      const others = Array.from({ length: 4 }, () => exchange(port, '', 1_000));
      await Promise.all([blocker, ...others].map((o) => o.connected));
      opened += 5;
      await accepted(opened);
      blocker.socket.write(get('/block'));
      const requests = [checkin(), checkin('X-Drover-Wait: 50\r\n'), checkin('X-Update-Nonce: n.s\r\n'), get('/v1/deployments')];
      others.forEach((other, i) => other.socket.write(requests[i] ?? ''));
      return (await Promise.all(others.map((o) => o.answer))).map((a) => [/^HTTP\/1\.1 (\d{3}) /.exec(a.text)?.[1] ?? '', /\r\nretry-after: (\d+)\r\n/i.exec(a.text)?.[1] ?? '-']);
    };
    // 250 ms: past the limit, within four times it.
    expect(await round()).toEqual([['503', '3'], ['503', '3'], ['200', '-'], ['200', '-']]);
    // 600 ms: past four times the limit, the work goes too, asked back in 1 s.
    blockMs = 600;
    expect(await round()).toEqual([['503', '3'], ['503', '3'], ['503', '1'], ['503', '1']]);
    expect(counts()).toEqual({ shedBusy: 6, shedConnections: 0 });
  });
});
