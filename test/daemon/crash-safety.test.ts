import { readFile } from 'node:fs/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { FakeManager } from '../fakes/fake-manager.js';
import { agentArtifact } from '../helpers/agent-artifact.js';
import { DaemonProcess, createHost, destroyHost, installAgent, releaseTree, waitForAgent } from '../helpers/droverd.js';

// Crash safety: for every failpoint of the update state machine, droverd is SIGKILLed there
// (DROVER_FAILPOINT), started again, and must end the update committed or rolled back, with the
// agent healthy and its configuration byte-identical. Three runs per point; the table of points
// and outcomes is printed at the end. Runs of one point go in parallel to bound the suite's time.

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
const RUNS = 3;

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

describe('crash safety: kill droverd at every failpoint, restart, end committed or rolled back', () => {
  afterAll(() => {
    if (rows.length === 0) return;
    const columns = ['point', 'run', 'killed', 'outcome', 'agent', 'config', 'seconds'] as const;
    const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c]).length)));
    const line = (values: readonly string[]): string => values.map((v, i) => v.padEnd(widths[i] ?? 0)).join('  ');
    console.log(['', line(columns), line(widths.map((w) => '-'.repeat(w))), ...rows.map((r) => line(columns.map((c) => String(r[c]))))].join('\n'));
  });

  for (const point of POINTS) {
    it(`${point.name}: ${RUNS} kill -> restart runs end ${point.expected}`, async () => {
      const results = await Promise.all(Array.from({ length: RUNS }, (_, i) => crashRun(point, i + 1)));
      rows.push(...results);
      for (const row of results) {
        expect(row.killed).toBe('SIGKILL');
        expect(row.outcome.startsWith(point.expected)).toBe(true);
        expect(row.agent).toBe(`${point.expected === 'succeeded' ? '2.0.0' : '1.0.0'} healthy`);
        expect(row.config).toBe('intact');
      }
    }, 90_000);
  }
});
