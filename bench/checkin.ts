// bench/checkin.ts: check-ins against a real manager (SQLite file, audit log, Fastify) on loopback,
// with 10,000 enrolled agents. Prints one JSON line per figure:
// - "checkin": throughput, autocannon rotating through the agents' credentials on --connections
//   connections (default 64), each sending its next request as soon as it has an answer;
// - "checkin-storm": a fleet reconnecting at once, --storm hosts (default 10,000) on a connection
//   each, checking in until they get a 200 and waiting out 503 OVERLOADED as droverd does
//   (test/helpers/storm.ts): timeouts, 503s, latency and the time until all checked in. --storm 0
//   skips it.
//
//   npm run bench:checkin [-- --agents 10000 --seconds 10 --connections 64 --rounds 3 --storm 10000 --quiet]
//   npm run bench:checkin -- --store postgres --replicas 2 [--database postgres://...] [--agents 100000]
//
// With --store postgres, after the SQLite figures (one replica, up to 10,000 agents: the baseline
// from the same run), --replicas managers (separate processes) share one PostgreSQL database seeded
// with --agents agents (default 100,000), and one load generator per replica splits the
// connections between them: the line "checkin-replicas" has the sum of their throughput and the
// worst replica's latency percentiles. Without --database, a throwaway PostgreSQL is started with
// scripts/services.sh (and stopped after).
//
// Request logging is on, as operators run the manager (lines go to a sink); --quiet turns it off.
//
// Targets: at least 5,000 check-ins/s with p99 under 25 ms on a 2-core machine (issue 4); in the
// storm, no attempt timed out and every host checked in (issue 18); check-ins at half the ceiling or
// better (issue 16): the line "checkin-ceiling", from the same run, is a bare Fastify route (the
// manager's own Fastify, in this process, no logging) that parses the same check-in body and answers
// what an idle check-in answers, under the same load generator, connections and duration.
// After a warm-up of both (up to 3 s each, not counted), check-ins and the bare route take turns,
// --rounds times each (both servers listening throughout),
// so that a slower or faster minute of this machine weighs on both: the lines give the median
// round and every round's figure, and the ratio is the median of the rounds' ratios.
//
// The manager runs in this process; the load generator in a child process, so that the two do
// not share one event loop. The manager is the built package (packages/*/dist, plain tsc output:
// what `drover manager start` runs), loaded under tsx with bench/tsconfig.dist.json (no `paths`),
// so that tsx's transform of the sources (it keeps function names with a call per closure made,
// 3-4 % of a check-in's CPU) is not measured; `npm run bench:checkin` builds first and passes it.
// Agents are enrolled through the store API (the path a check-in takes is what is measured, not
// enrollment).
import { fork } from 'node:child_process';
import { createRequire } from 'node:module';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { Ed25519PrivateKey, ed25519AuditSigner } from '@drover/protocol';
import { Fernet, generateFernetKey } from '@drover/protocol/internal';
import { createManagerLogger } from '../packages/manager/dist/logger.js';
import { newSecret } from '../packages/manager/dist/secrets.js';
import { createManager } from '../packages/manager/dist/server/create.js';
import { defaultAdmission } from '../packages/manager/dist/server/admission.js';
import { managerLimits } from '../packages/manager/dist/config.js';
import { reconnectStorm } from '../test/helpers/storm.js';
import { seedAgents } from './lib/seed-agents.js';
import { seedAgentsInPostgres } from './lib/seed-postgres.js';
import { PostgresStore } from '../packages/manager/dist/store/postgres/store.js';
import { startOwnPostgres } from '../test/helpers/services.js';
import pg from 'pg';
import { randomBytes } from 'node:crypto';
import type { StormResult } from '../test/helpers/storm.js';

if (!(process.env['TSX_TSCONFIG_PATH'] ?? '').endsWith('tsconfig.dist.json')) {
  process.stderr.write('bench/checkin.ts measures the built manager: run it with `npm run bench:checkin` (it builds, then runs tsx --tsconfig bench/tsconfig.dist.json).\n');
  process.exit(2);
}

interface Agent {
  id: string;
  credential: string;
  machineId: string;
}

interface LoadResult {
  checkinsPerSecond: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  requests: number;
  non2xx: number;
  errors: number;
  timeouts: number;
}

const { values } = parseArgs({
  options: {
    agents: { type: 'string' },
    seconds: { type: 'string', default: '10' },
    connections: { type: 'string', default: '64' },
    storm: { type: 'string', default: '10000' },
    rounds: { type: 'string', default: '3' },
    quiet: { type: 'boolean', default: false },
    load: { type: 'boolean', default: false },
    store: { type: 'string', default: 'sqlite' },
    replicas: { type: 'string', default: '1' },
    database: { type: 'string' },
    replica: { type: 'boolean', default: false },
  },
});

const AGENT_VERSION = '1.4.2';
const DAEMON_VERSION = '0.9.0';
const body = JSON.stringify({
  state: { agentVersion: AGENT_VERSION, daemonVersion: DAEMON_VERSION },
  health: { status: 'healthy', version: AGENT_VERSION, busy: false },
  acks: [],
  results: [],
});

// -- the load generator (child process)
async function runLoad(url: string, agents: Agent[], seconds: number, connections: number): Promise<LoadResult> {
  let next = 0;
  const result = await autocannon({
    url,
    connections,
    duration: seconds,
    pipelining: 1,
    requests: [
      {
        method: 'POST',
        setupRequest: (request) => {
          const agent = agents[next % agents.length];
          next += 1;
          if (agent === undefined) return request;
          return {
            ...request,
            method: 'POST',
            path: `/v1/agents/${agent.id}/checkin`,
            headers: {
              'content-type': 'application/json',
              authorization: `Bearer ${agent.credential}`,
              'x-machine-id': agent.machineId,
              'x-agent-version': AGENT_VERSION,
              'x-daemon-version': DAEMON_VERSION,
            },
            body,
          };
        },
      },
    ],
  });
  return {
    checkinsPerSecond: Math.round(result.requests.average),
    p50Ms: result.latency.p50,
    p90Ms: result.latency.p90,
    p99Ms: result.latency.p99,
    maxMs: result.latency.max,
    requests: result.requests.total,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
  };
}

/** What a replica process (--replica) is started with: the shared database and keys. */
interface ReplicaMessage {
  databaseUrl: string;
  dataDir: string;
  managerSeed: string;
  auditSeed: string;
  encryptionKey: string;
  adminToken: string;
  quiet: boolean;
}

type LoadMessage = { kind: 'autocannon'; url: string; agents: Agent[]; seconds: number; connections: number } | { kind: 'storm'; url: string; agents: Agent[]; connections: number };

/** Runs one load in a child process (its own event loop and file limit) and returns its figures. */
function inChild<T>(message: LoadMessage): Promise<T> {
  const child = fork(fileURLToPath(import.meta.url), ['--load'], { execArgv: process.execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return ask<T>(child, message);
}

function ask<T>(child: ChildProcess, message: LoadMessage | ReplicaMessage): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    child.once('message', (answer) => {
      resolve(answer as T);
    });
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code !== 0) reject(new Error(`the load generator exited with ${code}`));
    });
    child.send(message);
  });
}

if (values.load) {
  process.once('message', (message: LoadMessage) => {
    const run =
      message.kind === 'autocannon'
        ? runLoad(message.url, message.agents, message.seconds, message.connections)
        : reconnectStorm({ url: message.url, agents: message.agents.map((a) => ({ agentId: a.id, credential: a.credential, machineId: a.machineId })), connections: message.connections, attemptTimeoutMs: 10_000, deadlineMs: 300_000 });
    void run.then((result) => {
      process.send?.(result, () => process.exit(0));
    });
  });
} else if (values.replica) {
  // One manager replica on the shared database (--store postgres): started, listening, stopped on request.
  process.once('message', (message: ReplicaMessage) => {
    void (async () => {
      const auditKey = Ed25519PrivateKey.from(Buffer.from(message.auditSeed, 'hex'));
      const sink = new Writable({ write: (_chunk, _encoding, done) => { done(); } });
      const app = await createManager({
        dataDir: message.dataDir,
        database: { url: message.databaseUrl, poolSize: 16 },
        adminTokens: [message.adminToken],
        encryptionKey: message.encryptionKey,
        managerKey: Ed25519PrivateKey.from(Buffer.from(message.managerSeed, 'hex')),
        auditSigner: { signer: ed25519AuditSigner(auditKey), publicKey: auditKey.publicKey },
        logger: createManagerLogger({ level: 'info', destination: sink }),
        requestLogging: !message.quiet,
        env: {},
      });
      const url = await app.listen({ host: '127.0.0.1', port: 0, backlog: managerLimits.listenBacklog });
      process.once('message', () => {
        void app.close().then(() => process.exit(0));
      });
      process.send?.({ url });
    })();
  });
} else {
  const store = values.store;
  const replicas = Number(values.replicas);
  if ((store !== 'sqlite' && store !== 'postgres') || !Number.isSafeInteger(replicas) || replicas < 1 || (store === 'sqlite' && replicas !== 1)) {
    console.error('usage: --store sqlite (one replica) | --store postgres --replicas N (N >= 1)');
    process.exit(2);
  }
  const machine = { cpus: cpus().length, node: process.version };
  const target = { checkinsPerSecond: 5000, p99Ms: 25 };
  const sqlite = await benchSqlite(store === 'postgres' ? Math.min(Number(values.agents ?? 10_000), 10_000) : Number(values.agents ?? 10_000), store === 'sqlite' ? Number(values.storm) : 0, machine, target);
  if (store === 'postgres') await benchPostgres(Number(values.agents ?? 100_000), replicas, sqlite, machine, target);
}

async function benchSqlite(agentCount: number, stormHosts: number, machine: object, target: { checkinsPerSecond: number; p99Ms: number }): Promise<LoadResult> {
  const seconds = Number(values.seconds);
  const connections = Number(values.connections);
  const dir = await mkdtemp(join(tmpdir(), 'drover-bench-checkin-'));
  const auditKey = Ed25519PrivateKey.generate();
  // Request logging on is what an operator runs; lines go to a sink, as they would to journald.
  const sink = new Writable({ write: (_chunk, _encoding, done) => { done(); } });
  const app = await createManager({
    dataDir: dir,
    adminTokens: [newSecret()],
    encryptionKey: generateFernetKey(),
    managerKey: Ed25519PrivateKey.generate(),
    auditSigner: { signer: ed25519AuditSigner(auditKey), publicKey: auditKey.publicKey },
    logger: createManagerLogger({ level: 'info', destination: sink }),
    requestLogging: !values.quiet,
    env: {},
  });
  try {
    const core = app.manager;
    const { store } = core.context;
    const enrollStart = process.hrtime.bigint();
    const agents: Agent[] = await seedAgents(core, agentCount, { agentVersion: AGENT_VERSION, daemonVersion: DAEMON_VERSION });
    const enrollSeconds = Number(process.hrtime.bigint() - enrollStart) / 1e9;
    // The backlog `drover manager start` listens with.
    const url = await app.listen({ host: '127.0.0.1', port: 0, backlog: managerLimits.listenBacklog });

    // Check-ins and the bare route in turns (see the header).
    const bare = await bareFastify();
    const rounds: { checkin: LoadResult; ceiling: LoadResult }[] = [];
    try {
      const bareAgents: Agent[] = Array.from({ length: 1000 }, () => ({ id: `agent-${randomBytes(8).toString('hex')}`, credential: newSecret(), machineId: randomBytes(32).toString('hex') }));
      // A warm-up of both, not counted: JIT, the store's caches (every agent's identity once), the route's first runs.
      await inChild<LoadResult>({ kind: 'autocannon', url, agents, seconds: Math.min(seconds, 3), connections });
      await inChild<LoadResult>({ kind: 'autocannon', url: bare.url, agents: bareAgents, seconds: Math.min(seconds, 3), connections });
      for (let round = 0; round < Math.max(1, Number(values.rounds)); round++) {
        const checkin = await inChild<LoadResult>({ kind: 'autocannon', url, agents, seconds, connections });
        const ceiling = await inChild<LoadResult>({ kind: 'autocannon', url: bare.url, agents: bareAgents, seconds, connections });
        rounds.push({ checkin, ceiling });
        console.error(`round ${round + 1}: check-ins ${checkin.checkinsPerSecond}/s, bare route ${ceiling.checkinsPerSecond}/s`);
      }
    } finally {
      await bare.close();
    }
    const load = median(rounds.map((r) => r.checkin));
    const checkedIn = (await store.listAgents({ limit: agentCount })).filter((a) => a.lastCheckinAt !== undefined).length;
    console.log(
      JSON.stringify({
        bench: 'checkin',
        store: 'sqlite',
        replicas: 1,
        agents: agentCount,
        agentsCheckedIn: checkedIn,
        enrollSeconds: Number(enrollSeconds.toFixed(2)),
        seconds,
        connections,
        requestLogging: !values.quiet,
        ...load,
        rounds: rounds.map((r) => r.checkin.checkinsPerSecond),
        target,
        meetsTarget: load.checkinsPerSecond >= target.checkinsPerSecond && load.p99Ms < target.p99Ms && load.non2xx === 0 && load.errors === 0,
        ...machine,
      }),
    );
    printCeiling(rounds, load, machine);
    if (stormHosts > 0) {
      // Let the throughput run's connections close first.
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      const storm = await inChild<StormResult>({ kind: 'storm', url, agents, connections: stormHosts });
      console.log(
        JSON.stringify({
          bench: 'checkin-storm',
          agents: agentCount,
          requestLogging: !values.quiet,
          admission: defaultAdmission,
          backlog: managerLimits.listenBacklog,
          ...storm,
          target: { timeouts: 0, checkedIn: stormHosts },
          meetsTarget: storm.timeouts === 0 && storm.checkedIn === stormHosts && Object.keys(storm.other).length === 0,
          ...machine,
        }),
      );
    }
    return load;
  } finally {
    await app.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** The round with the median throughput (its latencies with it). */
function median(results: readonly LoadResult[]): LoadResult {
  const sorted = [...results].sort((a, b) => a.checkinsPerSecond - b.checkinsPerSecond);
  const middle = sorted[Math.floor((sorted.length - 1) / 2)];
  if (middle === undefined) throw new Error('no rounds');
  return middle;
}

/** The line "checkin-ceiling": the bare route's figures beside the check-ins' (SQLite), round by round. */
function printCeiling(rounds: readonly { checkin: LoadResult; ceiling: LoadResult }[], load: LoadResult, machine: object): void {
  const ratios = rounds.map((r) => r.checkin.checkinsPerSecond / r.ceiling.checkinsPerSecond).sort((a, b) => a - b);
  const ratio = ratios[Math.floor((ratios.length - 1) / 2)] ?? 0;
  console.log(
    JSON.stringify({
      bench: 'checkin-ceiling',
      route: 'bare Fastify POST /v1/agents/:agentId/checkin (JSON body parsed, fixed answer)',
      seconds: Number(values.seconds),
      connections: Number(values.connections),
      ...median(rounds.map((r) => r.ceiling)),
      rounds: rounds.map((r) => ({ ceiling: r.ceiling.checkinsPerSecond, checkin: r.checkin.checkinsPerSecond })),
      checkin: { checkinsPerSecond: load.checkinsPerSecond, p99Ms: load.p99Ms, requestLogging: !values.quiet },
      checkinToCeiling: Number(ratio.toFixed(2)),
      target: { checkinToCeiling: 0.5 },
      meetsTarget: ratio >= 0.5,
      ...machine,
    }),
  );
}

/**
 * The ceiling for check-ins on this machine: a Fastify route that does nothing a check-in does
 * beyond HTTP and JSON, measured with the same load generator as the check-ins.
 */
async function bareFastify(): Promise<{ url: string; close: () => Promise<void> }> {
  // The manager's own Fastify (its version and defaults), resolved from its package.
  const fastify = createRequire(new URL('../packages/manager/package.json', import.meta.url))('fastify') as (options: object) => {
    post: (path: string, handler: (request: { body: unknown }) => Promise<unknown>) => void;
    listen: (options: { host: string; port: number; backlog: number }) => Promise<string>;
    close: () => Promise<void>;
  };
  const app = fastify({ logger: false });
  app.post('/v1/agents/:agentId/checkin', (request) => {
    if (typeof request.body !== 'object' || request.body === null) return Promise.reject(new Error('no body'));
    return Promise.resolve({ commands: [], nextCheckinSeconds: 60 });
  });
  const url = await app.listen({ host: '127.0.0.1', port: 0, backlog: managerLimits.listenBacklog });
  return { url, close: () => app.close() };
}

async function benchPostgres(agentCount: number, replicas: number, sqlite: LoadResult, machine: object, target: { checkinsPerSecond: number; p99Ms: number }): Promise<void> {
  const seconds = Number(values.seconds);
  const connections = Number(values.connections);
  const own = values.database === undefined ? await startOwnPostgres() : undefined;
  const server = values.database ?? own?.url ?? '';
  const name = `drover_bench_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: server });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(server);
  url.pathname = `/${name}`;
  const dir = await mkdtemp(join(tmpdir(), 'drover-bench-replicas-'));
  const children: ChildProcess[] = [];
  try {
    const encryptionKey = generateFernetKey();
    // Migrated by the first open; seeded in bulk.
    await (await PostgresStore.open({ url: url.toString(), poolSize: 1 })).close();
    const seedStart = process.hrtime.bigint();
    const agents = await seedAgentsInPostgres(url.toString(), new Fernet(encryptionKey), agentCount, { agentVersion: AGENT_VERSION, daemonVersion: DAEMON_VERSION });
    const seedSeconds = Number(process.hrtime.bigint() - seedStart) / 1e9;
    const keys = { managerSeed: Buffer.from(Ed25519PrivateKey.generate().exportSeed()).toString('hex'), auditSeed: Buffer.from(Ed25519PrivateKey.generate().exportSeed()).toString('hex') };
    const urls: string[] = [];
    for (let i = 0; i < replicas; i += 1) {
      const child = fork(fileURLToPath(import.meta.url), ['--replica'], { execArgv: process.execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      children.push(child);
      const started = await ask<{ url: string }>(child, { databaseUrl: url.toString(), dataDir: join(dir, `replica-${i}`), ...keys, encryptionKey, adminToken: newSecret(), quiet: values.quiet });
      urls.push(started.url);
    }
    // One load generator per replica, each with its share of the connections and of the agents, all at once.
    const share = Math.max(1, Math.floor(connections / replicas));
    const loads = await Promise.all(urls.map((replicaUrl, i) => inChild<LoadResult>({ kind: 'autocannon', url: replicaUrl, agents: agents.filter((_, n) => n % replicas === i), seconds, connections: share })));
    const sum = (pick: (l: LoadResult) => number): number => loads.reduce((total, l) => total + pick(l), 0);
    const worst = (pick: (l: LoadResult) => number): number => Math.max(...loads.map(pick));
    const figures = {
      checkinsPerSecond: sum((l) => l.checkinsPerSecond),
      p50Ms: worst((l) => l.p50Ms),
      p90Ms: worst((l) => l.p90Ms),
      p99Ms: worst((l) => l.p99Ms),
      maxMs: worst((l) => l.maxMs),
      requests: sum((l) => l.requests),
      non2xx: sum((l) => l.non2xx),
      errors: sum((l) => l.errors),
      timeouts: sum((l) => l.timeouts),
    };
    console.log(
      JSON.stringify({
        bench: 'checkin-replicas',
        store: 'postgres',
        replicas,
        agents: agentCount,
        seedSeconds: Number(seedSeconds.toFixed(2)),
        seconds,
        connections: share * replicas,
        requestLogging: !values.quiet,
        ...figures,
        latency: 'p50Ms, p90Ms, p99Ms and maxMs are the worst replica\'s',
        perReplica: loads.map((l) => ({ checkinsPerSecond: l.checkinsPerSecond, p50Ms: l.p50Ms, p99Ms: l.p99Ms })),
        sqlite: { replicas: 1, checkinsPerSecond: sqlite.checkinsPerSecond, p50Ms: sqlite.p50Ms, p99Ms: sqlite.p99Ms },
        target,
        meetsTarget: figures.checkinsPerSecond >= target.checkinsPerSecond && figures.p99Ms < target.p99Ms && figures.non2xx === 0 && figures.errors === 0,
        ...machine,
      }),
    );
  } finally {
    await Promise.all(children.map((child) => new Promise((resolve) => {
      child.once('exit', resolve);
      child.send('stop');
    })));
    const drop = new pg.Client({ connectionString: server });
    await drop.connect();
    await drop.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await drop.end();
    await own?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}
