import { readFile } from 'node:fs/promises';
import { afterAll, describe, it } from 'vitest';
import { FakeManager } from '../fakes/fake-manager.js';
import { agentArtifact } from '../helpers/agent-artifact.js';
import { DaemonProcess, createHost, destroyHost, installAgent, releaseTree, waitForAgent } from '../helpers/droverd.js';

// Crash safety: for every failpoint of the update state machine, droverd is SIGKILLed there
// (DROVER_FAILPOINT), started again, and must end the update committed or rolled back, with the
// agent healthy and its configuration byte-identical. One run per point (DROVER_CRASH_RUNS=N for N,
// as CI's first pass does); the table of points and outcomes is printed at the end. Points run
// concurrently, at most CRASH_SLOTS runs at a time: a run mostly waits on its processes, and more
// than three at once on 2 cores only stretches each run without finishing sooner.

type Scenario = 'good' | 'busy' | 'bad';
interface Point {
  name: string;
  scenario: Scenario;
  expected: 'succeeded' | 'rolled_back';
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
  good('health_check'),
  good('committed'),
  { name: 'rolling_back', scenario: 'bad', expected: 'rolled_back' },
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
  config: string;
  seconds: string;
}

const rows: Row[] = [];

async function crashRun(point: Point, run: number): Promise<Row> {
  const started = Date.now();
  const manager = await FakeManager.start();
  const host = await createHost(manager);
  const daemons: DaemonProcess[] = [];
  try {
    await installAgent(host, manager, '1.0.0', await agentArtifact('1.0.0', point.scenario === 'busy' ? { busyAfterRefusalMs: 1_000 } : {}));
    const configBefore = await readFile(host.agentConfigPath);
    const first = new DaemonProcess(host, { DROVER_FAILPOINT: point.name });
    daemons.push(first);
    await manager.waitFor(() => (manager.checkins.length > 0 ? true : undefined), 15_000, 'a first check-in');
    const { commandId } = manager.queueUpdate({ version: '2.0.0', bytes: await agentArtifact('2.0.0', point.scenario === 'bad' ? { crashAtBoot: true } : {}) });
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
    const stop = await second.stop();
    if (stop.code !== 0) throw new Error(`droverd did not stop cleanly on SIGTERM (${String(stop.code)} ${String(stop.signal)})`);
    return {
      point: point.name,
      run,
      killed: killed ? 'SIGKILL' : `no (${String(exit?.code)})`,
      outcome: result.outcome + (result.detail.code === undefined ? '' : ` (${result.detail.code})`),
      agent: health,
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
    const order = (row: Row): number => POINTS.findIndex((p) => p.name === row.point) * 100 + row.run;
    rows.sort((a, b) => order(a) - order(b));
    const columns = ['point', 'run', 'killed', 'outcome', 'agent', 'config', 'seconds'] as const;
    const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c]).length)));
    const line = (values: readonly string[]): string => values.map((v, i) => v.padEnd(widths[i] ?? 0)).join('  ');
    console.log(['', line(columns), line(widths.map((w) => '-'.repeat(w))), ...rows.map((r) => line(columns.map((c) => String(r[c]))))].join('\n'));
  });

  for (const point of POINTS) {
    it(`${point.name}: ${RUNS === 1 ? 'a kill -> restart run ends' : `${RUNS} kill -> restart runs end`} ${point.expected}`, async ({ expect }) => {
      const results = await Promise.all(Array.from({ length: RUNS }, (_, i) => slot(() => crashRun(point, i + 1))));
      rows.push(...results);
      for (const row of results) {
        expect(row.killed).toBe('SIGKILL');
        expect(row.outcome.startsWith(point.expected)).toBe(true);
        expect(row.agent).toBe(`${point.expected === 'succeeded' ? '2.0.0' : '1.0.0'} healthy`);
        expect(row.config).toBe('intact');
      }
    }, TEST_TIMEOUT_MS);
  }
});
