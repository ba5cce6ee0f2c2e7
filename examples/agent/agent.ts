// The example agent: a small real program embedding @drover/agent on node:http. It does simulated
// work inside critical sections, so shutdown requests meet a busy agent, and it can be told by its
// environment to misbehave (start degraded, crash at boot), which the daemon's end-to-end and
// rollback tests need. Every line it prints is JSON; see README.md beside it for the environment.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { AgentError, createAgent, createNodeHandler, requireServiceTokenNode, SHUTDOWN_PATH } from '@drover/agent';
import type { Logger } from '@drover/agent';

/** The version this file ships as; a release build rewrites this line. `AGENT_VERSION` overrides it. */
export const BUILT_IN_VERSION = '1.0.0';

interface AgentConfig {
  /** Run a simulated job every this many ms (0: never). */
  workIntervalMs: number;
  /** How long each simulated job takes, in ms. */
  workMs: number;
}

const defaults: AgentConfig = { workIntervalMs: 0, workMs: 200 };
/** The longest simulated job, in ms (a day). */
const MAX_WORK_MS = 86_400_000;

function line(stream: NodeJS.WriteStream, level: string, msg: string, fields: Record<string, unknown> = {}): void {
  stream.write(`${JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields })}\n`);
}

function die(msg: string, fields: Record<string, unknown> = {}): never {
  line(process.stderr, 'error', msg, fields);
  process.exit(1);
}

const logger: Logger = {
  info: (obj, msg) => {
    line(process.stdout, 'info', msg, obj);
  },
  warn: (obj, msg) => {
    line(process.stdout, 'warn', msg, obj);
  },
  error: (obj, msg) => {
    line(process.stderr, 'error', msg, { ...obj, err: obj.err instanceof Error ? obj.err.message : obj.err });
  },
};

// An integer from 0 to `max`, the fallback when `raw` is absent or blank, undefined when it is
// anything else. Pure: the environment dies on undefined, a request gets a 400 (never `die`, which
// would let any caller with the token stop the agent with a bad query).
function integerIn(raw: string | undefined, fallback: number, max: number): number | undefined {
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  return Number.isInteger(value) && value >= 0 && value <= max ? value : undefined;
}

function envInteger(name: string, raw: string | undefined, fallback: number, max: number): number {
  return integerIn(raw, fallback, max) ?? die(`${name} must be an integer from 0 to ${max}`, { [name]: raw });
}

// The daemon gives the agent a config directory it never overwrites on update; the hash printed at
// boot lets a test prove the file survived an update byte for byte.
function loadConfig(dir: string | undefined): { config: AgentConfig; configHash: string | null; configPath: string | null } {
  if (dir === undefined || dir === '') return { config: defaults, configHash: null, configPath: null };
  const path = join(dir, 'agent.json');
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { config: defaults, configHash: null, configPath: null };
    die('Cannot read the agent config', { path, err: (error as Error).message });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch {
    die('The agent config is not valid JSON', { path });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) die('The agent config must be a JSON object', { path });
  const raw = parsed as Partial<Record<keyof AgentConfig, unknown>>;
  const ms = (key: keyof AgentConfig): number => {
    const value = raw[key] ?? defaults[key];
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 86_400_000) die(`"${key}" in agent.json must be milliseconds`, { path });
    return value;
  };
  return { config: { workIntervalMs: ms('workIntervalMs'), workMs: ms('workMs') }, configHash: createHash('sha256').update(bytes).digest('hex'), configPath: path };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(body));
}

function main(): void {
  const env = process.env;
  if (env.AGENT_CRASH_AT_BOOT === '1') die('Crashing at boot, as AGENT_CRASH_AT_BOOT=1 asks');

  const version = env.AGENT_VERSION?.trim() !== undefined && env.AGENT_VERSION.trim() !== '' ? env.AGENT_VERSION.trim() : BUILT_IN_VERSION;
  const port = envInteger('AGENT_PORT', env.AGENT_PORT ?? env.PORT, 8080, 65_535);
  const host = env.AGENT_HOST ?? '127.0.0.1';
  const busyMs = envInteger('AGENT_BUSY_MS', env.AGENT_BUSY_MS, 0, MAX_WORK_MS);
  const busyAfterRefusalMs = envInteger('AGENT_BUSY_AFTER_REFUSAL_MS', env.AGENT_BUSY_AFTER_REFUSAL_MS, 0, 86_400_000);
  const listenWhenFile = env.AGENT_LISTEN_WHEN_FILE?.trim() ?? '';
  const drainTimeoutMs = envInteger('AGENT_DRAIN_TIMEOUT_MS', env.AGENT_DRAIN_TIMEOUT_MS, 30_000, 86_400_000);
  const { config, configHash, configPath } = loadConfig(env.DROVER_CONFIG_DIR);

  let workTimer: NodeJS.Timeout | undefined;
  let jobs = 0;
  const runJob = (name: string, work: () => Promise<void>): void => {
    agent.critical(name, work).catch((error: unknown) => {
      // A job refused because the agent is draining is expected; anything else is worth a line.
      if (!(error instanceof AgentError && error.code === 'AGENT_SHUTTING_DOWN')) logger.error({ err: error, job: name }, 'Job failed');
    });
  };

  let agent: ReturnType<typeof createAgent>;
  try {
    agent = createAgent({
      version,
      drainTimeoutMs,
      logger,
      onShutdownTimeoutMs: 10_000,
      health: env.AGENT_START_UNHEALTHY === '1' ? 'degraded' : 'healthy',
      onShutdown: async (reason) => {
        clearInterval(workTimer);
        logger.info({ event: 'stopping', reason }, 'Stopping: closing the server');
        await new Promise<void>((resolve) => {
          server.close(() => {
            resolve();
          });
          server.closeIdleConnections();
        });
      },
    });
  } catch (error) {
    if (error instanceof AgentError) die(error.message, { code: error.code });
    throw error;
  }

  const drover = createNodeHandler(agent);
  const guard = requireServiceTokenNode(agent);
  // AGENT_BUSY_AFTER_REFUSAL_MS: startup work that ends that long after the first shutdown request
  // the agent refuses as busy, so a test sees at least one deferral however slow the host is.
  let refused: (() => void) | undefined;
  const route = (req: IncomingMessage, res: ServerResponse): void => {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://agent.local');
    } catch {
      json(res, 400, { error: { code: 'BAD_REQUEST_TARGET', message: 'The request target is not a valid URL path.' } });
      return;
    }
    if (refused !== undefined && url.pathname.endsWith(SHUTDOWN_PATH)) {
      res.once('finish', () => {
        if (res.statusCode === 503) refused?.();
      });
    }
    if (drover(req, res)) return;
    // On-demand work, for tests that need a busy agent: POST /work?ms=N (service token required).
    if (url.pathname === '/work') {
      if (!guard(req, res)) return;
      if (req.method !== 'POST') {
        json(res, 405, { error: { code: 'METHOD_NOT_ALLOWED', message: 'POST /work?ms=N' } });
        return;
      }
      // Request input is refused with a 400, never fatal: one value, an integer of milliseconds.
      const values = url.searchParams.getAll('ms');
      const ms = values.length > 1 ? undefined : integerIn(values[0], busyMs > 0 ? busyMs : 1_000, MAX_WORK_MS);
      if (ms === undefined) {
        json(res, 400, { error: { code: 'QUERY_INVALID', message: `ms must be one integer from 0 to ${MAX_WORK_MS} (milliseconds of work).` } });
        return;
      }
      const name = `on-demand-${++jobs}`;
      if (agent.shuttingDown()) {
        json(res, 409, { error: { code: 'SHUTDOWN_IN_PROGRESS', message: 'The agent is shutting down.' } });
        return;
      }
      runJob(name, () => sleep(ms));
      json(res, 202, { started: name, ms });
      return;
    }
    if (url.pathname === '/info' && req.method === 'GET') {
      json(res, 200, { version, configHash, configPath, pid: process.pid, uptimeSeconds: Math.round(process.uptime()) });
      return;
    }
    json(res, 404, { error: { code: 'NOT_FOUND', message: `No route ${url.pathname}` } });
  };
  // A request is answered, never fatal: a bug in a route costs that request a 500, not the agent
  // its life (and every in-flight job with it).
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    try {
      route(req, res);
    } catch (error) {
      logger.error({ event: 'request_failed', err: error, method: req.method }, 'A request failed; the agent keeps running');
      if (res.headersSent) res.destroy();
      else json(res, 500, { error: { code: 'INTERNAL_ERROR', message: 'The agent failed to handle the request; see its log.' } });
    }
  });

  server.on('error', (error: NodeJS.ErrnoException) => {
    die('The server failed', { err: error.message, code: error.code, port, host });
  });
  const listen = (): void => {
    server.listen(port, host, () => {
      const address = server.address();
      const bound = typeof address === 'object' && address !== null ? address.port : port;
      // The one line tests and the daemon look for: the port actually bound (AGENT_PORT=0 picks one).
      line(process.stdout, 'info', 'listening', { event: 'listening', port: bound, host, version, configHash, pid: process.pid });
    });
  };
  if (listenWhenFile === '') {
    listen();
  } else {
    logger.info({ event: 'listen_waiting', file: listenWhenFile }, 'Not listening until AGENT_LISTEN_WHEN_FILE exists');
    const poll = setInterval(() => {
      if (!existsSync(listenWhenFile)) return;
      clearInterval(poll);
      listen();
    }, 50);
  }

  if (busyAfterRefusalMs > 0) {
    const firstRefusal = new Promise<void>((resolve) => {
      refused = () => {
        refused = undefined;
        resolve();
      };
    });
    runJob('startup-work', async () => {
      await firstRefusal;
      await sleep(busyAfterRefusalMs);
    });
  } else if (busyMs > 0) {
    runJob('startup-work', () => sleep(busyMs));
  }
  if (config.workIntervalMs > 0) {
    workTimer = setInterval(() => {
      runJob(`job-${++jobs}`, () => sleep(config.workMs));
    }, config.workIntervalMs);
  }

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      void agent.shutdown(`signal ${signal}`);
    });
  }
}

main();
