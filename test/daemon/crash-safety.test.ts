import { readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { afterAll, describe, it } from 'vitest';
import { FakeManager } from '../fakes/fake-manager.js';
import { agentArtifact } from '../helpers/agent-artifact.js';
import type { AgentArtifactOptions } from '../helpers/agent-artifact.js';
import { DaemonProcess, agentRuntime, createHost, destroyHost, hostAgents, installAgent, releaseTree, waitForAgent } from '../helpers/droverd.js';

// Crash safety: for every failpoint of the update state machine, droverd is SIGKILLed there
// (DROVER_FAILPOINT), started again, and must end the update committed or rolled back, with the
// agent healthy and its configuration byte-identical. One run per point (DROVER_CRASH_RUNS=N for N,
// as CI's first pass does); the table of points and outcomes is printed at the end. Points run
// concurrently, at most CRASH_SLOTS runs at a time: a run mostly waits on its processes, and more
// than three at once on 2 cores only stretches each run without finishing sooner.
//
// The agent:* points (decision 0026) kill droverd at each boundary of an agent spawn: before the
// intent record, after it, right after spawn(2) returned, before and after the pid record; they are
// qualified by the version started (`@2.0.0`: the update's new agent; `@1.0.0#2`: the rollback's
// second start of 1.0.0). After every run exactly one agent process of the host runs, counted by its
// mark in /proc (DROVER_AGENT_INSTANCE), not by agent.json, which the kill may have left unwritten.

type Scenario = 'good' | 'busy' | 'bad';
interface Point {
  name: string;
  scenario: Scenario;
  expected: 'succeeded' | 'rolled_back';
  /** Agent processes the restarted droverd must find and stop (the one the kill orphaned), when known. */
  strays?: number;
  /** What the restarted droverd must say of an intent in agent.json without a pid (agent.unrecorded), when known. */
  unrecorded?: Row['unrecorded'];
}

const good = (name: string): Point => ({ name, scenario: 'good', expected: 'succeeded' });
const POINTS: readonly Point[] = [
  good('received'),
  good('command_verified'),
  good('downloading'),
  good('downloading:after'),
  good('downloaded'),
  good('artifact_verified'),
  good('artifact_verified:after'),
  good('staged'),
  good('draining'),
  { name: 'deferred', scenario: 'busy', expected: 'succeeded' },
  good('swapped'),
  good('swapped:after'),
  good('starting'),
  { ...good('agent:before-intent@2.0.0'), strays: 0, unrecorded: '-' },
  { ...good('agent:intent-written@2.0.0'), strays: 0, unrecorded: 'not found' },
  { ...good('agent:spawned@2.0.0'), strays: 1, unrecorded: 'found' },
  { ...good('agent:before-record@2.0.0'), strays: 1, unrecorded: 'found' },
  { ...good('agent:recorded@2.0.0'), strays: 1, unrecorded: '-' },
  good('health_check'),
  good('committed'),
  { name: 'rolling_back', scenario: 'bad', expected: 'rolled_back' },
  // The rollback's restart of 1.0.0 resumes from rolling_back, not starting: its orphan, once.
  { name: 'agent:spawned@1.0.0#2', scenario: 'bad', expected: 'rolled_back', strays: 1, unrecorded: 'found' },
  { name: 'rolling_back:after', scenario: 'bad', expected: 'rolled_back' },
  { name: 'rolled_back', scenario: 'bad', expected: 'rolled_back' },
];
const RUNS = runsFromEnv(process.env['DROVER_CRASH_RUNS']);
const CRASH_SLOTS = 3;

function runsFromEnv(value: string | undefined): number {
  if (value === undefined || value === '') return 1;
  const runs = Number(value);
  if (!Number.isInteger(runs) || runs < 1 || runs > 10) throw new Error(`DROVER_CRASH_RUNS must be an integer from 1 to 10, not ${JSON.stringify(value)}`);
  return runs;
}

/** At most `slots` callers inside at once; the others wait their turn in order. */
function semaphore(slots: number): <T>(work: () => Promise<T>) => Promise<T> {
  let free = slots;
  const waiting: (() => void)[] = [];
  return async (work) => {
    if (free > 0) free -= 1;
    else await new Promise<void>((resolve) => waiting.push(resolve));
    try {
      return await work();
    } finally {
      const next = waiting.shift();
      if (next === undefined) free += 1;
      else next();
    }
  };
}
const slot = semaphore(CRASH_SLOTS);
// A point's test may wait for slots behind every other run before its own runs start.
const TEST_TIMEOUT_MS = 60_000 + Math.ceil((POINTS.length * RUNS) / CRASH_SLOTS) * 20_000;

interface Row {
  point: string;
  run: number;
  killed: string;
  outcome: string;
  agent: string;
  /** Agent processes of the host after the run (by their mark in /proc), with their versions. */
  agents: string;
  /** Stray agents the restarted droverd stopped (its agent.strays log lines). */
  reaped: number;
  /** An intent without a pid at the restart (agent.unrecorded): its instance found by the mark or not; '-' for none. */
  unrecorded: 'found' | 'not found' | '-';
  config: string;
  seconds: string;
}

const rows: Row[] = [];

// One bundle of the example agent serves every run (agent-artifact.ts caches it); the few variants
// of it are built once too.
const artifacts = new Map<string, Promise<Buffer>>();
function artifact(version: string, options: AgentArtifactOptions = {}): Promise<Buffer> {
  const key = `${version} ${JSON.stringify(options)}`;
  let bytes = artifacts.get(key);
  if (bytes === undefined) {
    bytes = agentArtifact(version, options);
    artifacts.set(key, bytes);
  }
  return bytes;
}

/** A TCP port free on 127.0.0.1 right now. */
async function freeLoopbackPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => {
    server.close(() => {
      resolve();
    });
  });
  if (typeof address !== 'object' || address === null) throw new Error('no port');
  return address.port;
}

async function crashRun(point: Point, run: number, options: { fixedPort?: boolean } = {}): Promise<Row> {
  const started = Date.now();
  const manager = await FakeManager.start();
  const host = await createHost(manager);
  const daemons: DaemonProcess[] = [];
  try {
    if (options.fixedPort === true) {
      const settings = JSON.parse(await readFile(host.configPath, 'utf8')) as { agent: Record<string, unknown> };
      settings.agent['port'] = await freeLoopbackPort();
      await writeFile(host.configPath, `${JSON.stringify(settings, null, 2)}\n`);
    }
    await installAgent(host, manager, '1.0.0', await artifact('1.0.0', point.scenario === 'busy' ? { busyAfterRefusalMs: 1_000 } : {}));
    const configBefore = await readFile(host.agentConfigPath);
    const first = new DaemonProcess(host, { DROVER_FAILPOINT: point.name });
    daemons.push(first);
    await manager.waitFor(() => (manager.checkins.length > 0 ? true : undefined), 30_000, 'a first check-in');
    const { commandId } = manager.queueUpdate({ version: '2.0.0', bytes: await artifact('2.0.0', point.scenario === 'bad' ? { crashAtBoot: true } : {}) });
    const exit = await Promise.race([
      first.exited,
      new Promise<undefined>((resolve) => {
        setTimeout(() => {
          resolve(undefined);
        }, 30_000);
      }),
    ]);
    const killed = exit?.signal === 'SIGKILL';
    const second = new DaemonProcess(host);
    daemons.push(second);
    const result = await manager.waitForResult(commandId, ['succeeded', 'rolled_back', 'failed', 'rejected'], 40_000);
    const version = point.expected === 'succeeded' ? '2.0.0' : '1.0.0';
    const health = await waitForAgent(host, version, 20_000).then(
      (h) => `${h.version} ${h.status}`,
      () => 'unhealthy',
    );
    const intact = (await readFile(host.agentConfigPath)).equals(configBefore);
    const tree = await releaseTree(host);
    if (!tree.includes(`${version}/installed.json`)) throw new Error(`releases/ lacks ${version}: ${tree.join(', ')}`);
    if (options.fixedPort === true && second.output.some((line) => line.includes('EADDRINUSE'))) throw new Error('The restarted agent found its port taken (EADDRINUSE)');
    const agents = await hostAgents(host);
    const recorded = await agentRuntime(host);
    if (agents.length === 1 && recorded?.pid !== agents[0]?.pid) throw new Error(`agent.json names pid ${String(recorded?.pid)}, the agent running is ${String(agents[0]?.pid)}`);
    const reaped = second.lines.filter((l) => l.event === 'agent.strays').reduce((n, l) => n + (Array.isArray(l['pids']) ? l['pids'].length : 0), 0);
    const intent = second.lines.find((l) => l.event === 'agent.unrecorded');
    const unrecorded = intent === undefined ? '-' : intent['found'] === true ? 'found' : 'not found';
    const stop = await second.stop();
    if (stop.code !== 0) throw new Error(`droverd did not stop cleanly on SIGTERM (${String(stop.code)} ${String(stop.signal)})`);
    return {
      point: point.name,
      run,
      killed: killed ? 'SIGKILL' : `no (${String(exit?.code)})`,
      outcome: result.outcome + (result.detail.code === undefined ? '' : ` (${result.detail.code})`),
      agent: health,
      agents: `${agents.length}${agents.length === 0 ? '' : ` (${agents.map((a) => a.version ?? '?').join(', ')})`}`,
      reaped,
      unrecorded,
      config: intact ? 'intact' : 'CHANGED',
      seconds: ((Date.now() - started) / 1000).toFixed(1),
    };
  } finally {
    await destroyHost(host, daemons);
    await manager.close();
  }
}

describe.concurrent('crash safety: kill droverd at every failpoint, restart, end committed or rolled back', () => {
  afterAll(() => {
    if (rows.length === 0) return;
    const order = (row: Row): number => (POINTS.findIndex((p) => p.name === row.point) + 1 || POINTS.length + 1) * 100 + row.run;
    rows.sort((a, b) => order(a) - order(b));
    const columns = ['point', 'run', 'killed', 'outcome', 'agent', 'agents', 'reaped', 'unrecorded', 'config', 'seconds'] as const;
    const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c]).length)));
    const line = (values: readonly string[]): string => values.map((v, i) => v.padEnd(widths[i] ?? 0)).join('  ');
    console.log(['', line(columns), line(widths.map((w) => '-'.repeat(w))), ...rows.map((r) => line(columns.map((c) => String(r[c]))))].join('\n'));
  });

  for (const point of POINTS) {
    it(`${point.name}: ${RUNS === 1 ? 'a kill -> restart run ends' : `${RUNS} kill -> restart runs end`} ${point.expected}`, async ({ expect }) => {
      const results = await Promise.all(Array.from({ length: RUNS }, (_, i) => slot(() => crashRun(point, i + 1))));
      rows.push(...results);
      const version = point.expected === 'succeeded' ? '2.0.0' : '1.0.0';
      for (const row of results) {
        expect(row.killed).toBe('SIGKILL');
        expect(row.outcome.startsWith(point.expected)).toBe(true);
        expect(row.agent).toBe(`${version} healthy`);
        expect(row.agents).toBe(`1 (${version})`);
        if (point.strays !== undefined) expect(row.reaped).toBe(point.strays);
        if (point.unrecorded !== undefined) expect(row.unrecorded).toBe(point.unrecorded);
        expect(row.config).toBe('intact');
      }
    }, TEST_TIMEOUT_MS);
  }

  // Issue 18's example: with a fixed agent port, the orphan of a droverd killed right after the new
  // agent appeared held the port, and the restarted droverd's agent failed EADDRINUSE until rollback.
  it('fixed agent port: droverd killed right after spawning the new agent, restarted, completes the update (no EADDRINUSE)', async ({ expect }) => {
    const point: Point = { ...good('agent:spawned@2.0.0'), strays: 1 };
    const row = await slot(() => crashRun(point, 1, { fixedPort: true }));
    rows.push({ ...row, point: 'fixed port: agent:spawned@2.0.0' });
    expect(row.killed).toBe('SIGKILL');
    expect(row.outcome).toBe('succeeded');
    expect(row.agent).toBe('2.0.0 healthy');
    expect(row.agents).toBe('1 (2.0.0)');
    expect(row.reaped).toBe(1);
    expect(row.unrecorded).toBe('found');
    expect(row.config).toBe('intact');
  }, TEST_TIMEOUT_MS);
});
