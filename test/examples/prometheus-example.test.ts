// examples/prometheus/ as an operator uses it: promtool (Debian's prometheus package) checks the
// alert rules and runs their unit tests, and checks the scrape config; the Grafana dashboard names
// only metrics a real manager exports, as read from a real scrape of one, and shows every one.
import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { generateServiceToken } from '@drover/protocol';
import { afterAll, describe, expect, it } from 'vitest';
import { startTestManager } from '../../packages/manager/test/harness.js';
import { repoRoot } from '../helpers/cli.js';
import { skipWithoutPrometheus } from '../helpers/services.js';

const run = promisify(execFile);
const example = join(repoRoot, 'examples', 'prometheus');
const skip = skipWithoutPrometheus('the promtool checks of examples/prometheus');

let dir: string | undefined;
afterAll(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

/** The metric families a real manager exports, from its GET /metrics: name -> type. */
async function exportedFamilies(): Promise<Map<string, string>> {
  const token = generateServiceToken();
  const m = await startTestManager({ metricsTokens: [token] });
  try {
    const res = await m.request('GET', '/metrics', { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    const families = new Map<string, string>();
    for (const line of res.text.split('\n')) {
      const match = /^# TYPE (\S+) (\S+)$/.exec(line);
      if (match?.[1] !== undefined && match[2] !== undefined) families.set(match[1], match[2]);
    }
    return families;
  } finally {
    await m.close();
  }
}

describe.skipIf(skip)('examples/prometheus with promtool', () => {
  it('the alert rules pass `promtool check rules` and their unit tests (`promtool test rules`) fire and stay quiet as written', async () => {
    const checked = await run('promtool', ['check', 'rules', 'drover-alerts.yml'], { cwd: example, timeout: 60_000 });
    expect(checked.stdout).toContain('SUCCESS: 4 rules found');
    const tested = await run('promtool', ['test', 'rules', 'drover-alerts.test.yml'], { cwd: example, timeout: 60_000 });
    expect(tested.stdout).toContain('SUCCESS');
    const alerts = await readFile(join(example, 'drover-alerts.yml'), 'utf8');
    for (const name of ['DroverRolloutStuck', 'DroverRolloutGateFailed', 'DroverHostsSilent']) expect(alerts).toContain(`alert: ${name}`);
  }, 120_000);

  it('the scrape config passes `promtool check config` (with its token file in place)', async () => {
    dir = await mkdtemp(join(tmpdir(), 'drover-prometheus-example-'));
    const tokenFile = join(dir, 'drover-metrics.token');
    await writeFile(tokenFile, `${generateServiceToken()}\n`, { mode: 0o600 });
    const config = (await readFile(join(example, 'prometheus.yml'), 'utf8')).replace('/etc/prometheus/drover-metrics.token', tokenFile);
    await writeFile(join(dir, 'prometheus.yml'), config);
    await copyFile(join(example, 'drover-alerts.yml'), join(dir, 'drover-alerts.yml'));
    const checked = await run('promtool', ['check', 'config', 'prometheus.yml'], { cwd: dir, timeout: 60_000 });
    expect(`${checked.stdout}${checked.stderr}`).toContain('SUCCESS');
  }, 120_000);
});

describe('examples/prometheus/drover-dashboard.json', () => {
  it('is a Grafana dashboard whose every expr names only metrics a real manager exports, and that shows every drover metric', async () => {
    const dashboard = JSON.parse(await readFile(join(example, 'drover-dashboard.json'), 'utf8')) as { title: string; panels: { title: string; targets: { expr: string }[] }[] };
    expect(dashboard.title).toBe('drover manager');
    const exprs = dashboard.panels.flatMap((panel) => panel.targets.map((target) => target.expr));
    expect(exprs.length).toBeGreaterThanOrEqual(dashboard.panels.length);

    const families = await exportedFamilies();
    expect(families.size).toBeGreaterThanOrEqual(12);
    // The series names a family has: a histogram's _bucket, _sum and _count.
    const series = new Set<string>();
    for (const [name, type] of families) {
      if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) series.add(name + suffix);
      else series.add(name);
    }
    const named = new Set(exprs.flatMap((expr) => [...expr.matchAll(/\bdrover_[a-z0-9_]+/g)].map((m) => m[0])));
    expect([...named].filter((name) => !series.has(name))).toEqual([]);
    // And none is left out: every family the manager exports is on a panel.
    const shown = [...families.keys()].filter((family) => [...named].some((name) => name === family || name.startsWith(`${family}_`)));
    expect(shown.sort()).toEqual([...families.keys()].sort());
  }, 60_000);
});
