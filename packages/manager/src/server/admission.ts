import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';

// Admission: what the manager does when more arrives than it can serve. A fleet reconnecting after
// an outage opens thousands of connections at once; a request the manager cannot serve soon is
// answered at once with 503 OVERLOADED and a Retry-After (droverd waits that long, plus a random
// part of it, so the fleet comes back spread out) instead of waiting in a queue until the client
// times out. Shed requests bypass routing, authentication, the store and the request log: an
// answer costs microseconds, so the event loop gets back to accepting connections and the listen
// queue does not overflow (docs/decisions/0027-admission.md).
//
// Two signals, both cheap and local:
// - the event loop is held by a burst: the current turn has run longer than `maxEventLoopBlockMs`
//   since the timers last ran, and has already let in at least `minBurst` requests (one slow fsync
//   with a few requests around it is not overload; thousands of check-ins at once are, and while
//   they are worked through, new connections wait in the kernel's queue). Requests that move work
//   on (a daemon's report of an update: it carries X-Update-Nonce; an operator's call; a
//   download) are shed only past WORK_BLOCK_FACTOR times that, with a Retry-After of
//   WORK_RETRY_AFTER_SECONDS: check-ins with nothing to report, channel holds and enrollments go
//   first. A rollout's last phase reports thousands of results within a second; shed with the
//   idle check-ins, each waited out a 5 s Retry-After and the phase with them (decision 0027);
// - too many connections: a request on a connection opened beyond `maxConnections` is answered
//   and the connection closed, so file descriptors and memory stay bounded.
// `/healthz` is never shed: overload is not death, and a supervisor must not restart the manager for it.

/** How the manager sheds load; see {@link ManagerServerOptions}. */
export interface AdmissionOptions {
  /** ms one event-loop turn may run before new requests are shed; 0 never sheds for this. */
  maxEventLoopBlockMs: number;
  /** Open connections beyond which a new connection's requests are shed and it is closed; 0: no cap. */
  maxConnections: number;
  /** Seconds a shed client is asked to wait (Retry-After). */
  retryAfterSeconds: number;
}

/** The defaults: shed after 250 ms in one turn, cap connections at 50,000, Retry-After 5 s. */
export const defaultAdmission: AdmissionOptions = {
  maxEventLoopBlockMs: 250,
  maxConnections: 50_000,
  retryAfterSeconds: 5,
};

const TICK_MS = 20;
const WORK_BLOCK_FACTOR = 4; // work (see the header) is shed past this many times maxEventLoopBlockMs
const WORK_RETRY_AFTER_SECONDS = 1; // and asked to come back this soon (at most retryAfterSeconds)
const REPORT_MS = 10_000;

/** What was shed, for a log line and the tests. */
export interface AdmissionCounts {
  /** Requests answered 503 because the event loop was held. */
  shedBusy: number;
  /** Requests answered 503 (and connections closed) because of the connection cap. */
  shedConnections: number;
}

const overCap = new WeakSet<Socket>();

/**
 * An HTTP server (for Fastify's `serverFactory`) whose requests pass admission before `handler`
 * sees them. The returned `stop` ends its timers.
 */
export function admittingServer(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  options: AdmissionOptions,
  logger: Logger,
  minBurst = 32,
  tls?: ManagerTls,
): { server: Server; counts: () => AdmissionCounts; stop: () => void } {
  let lastTick = performance.now();
  let admittedSinceTick = 0;
  let connections = 0;
  let shedBusy = 0;
  let shedConnections = 0;
  let reported: AdmissionCounts = { shedBusy: 0, shedConnections: 0 };
  const ticker = setInterval(() => {
    lastTick = performance.now();
    admittedSinceTick = 0;
  }, TICK_MS);
  ticker.unref();
  // One warning per interval with what was shed in it, never one line per request.
  const reporter = setInterval(() => {
    const busy = shedBusy - reported.shedBusy;
    const capped = shedConnections - reported.shedConnections;
    if (busy + capped > 0) {
      logger.warn({ event: 'manager.overloaded', shedBusy: busy, shedConnections: capped, connections, seconds: REPORT_MS / 1000 }, `overloaded: answered ${busy + capped} requests 503 OVERLOADED in the last ${REPORT_MS / 1000} s`);
    }
    reported = { shedBusy, shedConnections };
  }, REPORT_MS);
  reporter.unref();

  const body = (reason: string): string =>
    JSON.stringify({ error: { code: 'OVERLOADED', message: `The manager is overloaded (${reason}); retry after the time in Retry-After.` } });
  const busyBody = body('too many requests at once');
  const capBody = body('too many connections');
  const retryAfter = String(options.retryAfterSeconds);

  const workRetryAfter = String(Math.min(options.retryAfterSeconds, WORK_RETRY_AFTER_SECONDS));

  const admit = (req: IncomingMessage, res: ServerResponse): void => {
    const capped = overCap.has(req.socket);
    let busy = false;
    let work = false;
    if (!capped && options.maxEventLoopBlockMs > 0 && admittedSinceTick >= minBurst) {
      const blockedMs = performance.now() - lastTick;
      if (blockedMs > options.maxEventLoopBlockMs) {
        work = isWork(req);
        busy = !work || blockedMs > options.maxEventLoopBlockMs * WORK_BLOCK_FACTOR;
      }
    }
    if ((capped || busy) && !isHealthz(req.url)) {
      if (capped) shedConnections += 1;
      else shedBusy += 1;
      const payload = capped ? capBody : busyBody;
      res.writeHead(503, {
        'content-type': 'application/json; charset=utf-8',
        'content-length': Buffer.byteLength(payload),
        'retry-after': work ? workRetryAfter : retryAfter,
        'cache-control': 'no-store',
        // Over the cap, the connection goes: that is what the cap is for. A busy loop keeps it.
        ...(capped ? { connection: 'close' } : {}),
      });
      res.end(payload);
      return;
    }
    admittedSinceTick += 1;
    handler(req, res);
  };
  // A handshake not done in 10 s is dropped: a TLS connection costs a socket and a key exchange before any request.
  const server: Server = tls === undefined ? createServer(admit) : createHttpsServer({ cert: tls.cert, key: tls.key, minVersion: 'TLSv1.2', handshakeTimeout: 10_000 }, admit);
  // Every TCP connection counts, a TLS one from before its handshake.
  server.on('connection', (socket: Socket) => {
    connections += 1;
    socket.once('close', () => {
      connections -= 1;
    });
    if (options.maxConnections > 0 && connections > options.maxConnections) {
      if (tls === undefined) overCap.add(socket);
      else {
        // No 503 can be written before the handshake: over the cap, a TLS connection is closed at once.
        shedConnections += 1;
        socket.destroy();
      }
    }
  });
  server.once('close', () => {
    clearInterval(ticker);
    clearInterval(reporter);
  });
  return {
    server,
    counts: () => ({ shedBusy, shedConnections }),
    stop: () => {
      clearInterval(ticker);
      clearInterval(reporter);
    },
  };
}

/** The manager's own TLS: a PEM certificate chain and its private key (`drover manager start --tls-cert F --tls-key F`). */
export interface ManagerTls {
  cert: string;
  key: string;
}

/**
 * A request that moves work on, shed last: a daemon's report of an update (it carries
 * X-Update-Nonce), and anything that is not a check-in or an enrollment (an operator's call, a
 * download). A check-in with nothing to report, a channel hold and an enrollment can wait.
 */
function isWork(req: IncomingMessage): boolean {
  if (req.headers['x-update-nonce'] !== undefined) return true;
  const path = (req.url ?? '').split('?', 1)[0] ?? '';
  return !(path.includes('/v1/agents/') && (path.endsWith('/checkin') || path.endsWith('/enroll')));
}

function isHealthz(url: string | undefined): boolean {
  if (url === undefined) return false;
  const path = url.split('?', 1)[0] ?? '';
  return path === '/healthz' || path.endsWith('/healthz');
}
