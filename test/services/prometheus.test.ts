// A real Prometheus (Debian's, started by scripts/services.sh) scrapes a real manager on
// 127.0.0.1:0 every second with the metrics token while a canary rollout runs over a simulated
// fleet speaking the real check-in protocol; then Prometheus's own HTTP API is asked what it saw.
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateServiceToken } from '@drover/protocol';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestManager } from '../../packages/manager/test/harness.js';
import type { TestManager } from '../../packages/manager/test/harness.js';
import { FleetSimulator, waitFor } from '../fleet/fleet-simulator.js';
import { skipWithoutPrometheus, startPrometheus } from '../helpers/services.js';
import type { PrometheusService } from '../helpers/services.js';

const skip = skipWithoutPrometheus('the Prometheus suite');

const HOSTS = 5;

/** One instant query of Prometheus's HTTP API: the value of its first sample, or undefined when it has none. */
async function query(prometheus: PrometheusService, expr: string): Promise<number | undefined> {
  const response = await request(`${prometheus.url}/api/v1/query?query=${encodeURIComponent(expr)}`, { headersTimeout: 5_000, bodyTimeout: 5_000 });
  const answer = (await response.body.json()) as { status: string; data?: { resultType: string; result: { value: [number, string] }[] } };
  expect(answer.status, expr).toBe('success');
  const first = answer.data?.result[0];
  return first === undefined ? undefined : Number(first.value[1]);
}

/** Polls `expr` until Prometheus answers `expected` (bounded): it scrapes once a second. */
async function eventually(prometheus: PrometheusService, expr: string, expected: (value: number) => boolean, timeoutMs = 30_000): Promise<number> {
  return waitFor(`Prometheus to answer ${expr}`, async () => {
    const value = await query(prometheus, expr);
    return value !== undefined && expected(value) ? value : undefined;
  }, timeoutMs, 250);
}

describe.skipIf(skip)('Prometheus scraping a manager during a rollout', () => {
  let manager: TestManager | undefined;
  let fleet: FleetSimulator | undefined;
  let prometheus: PrometheusService | undefined;
  let dir: string | undefined;
  const metricsToken = generateServiceToken();

  beforeAll(async () => {
    manager = await startTestManager({ metricsTokens: [metricsToken], rollout: { tickMs: 50 } });
    dir = await mkdtemp(join(tmpdir(), 'drover-prometheus-'));
    const tokenFile = join(dir, 'metrics.token');
    await writeFile(tokenFile, `${metricsToken}\n`, { mode: 0o600 });
    await chmod(tokenFile, 0o600);
    prometheus = await startPrometheus({ target: new URL(manager.url).host, tokenFile });
  }, 120_000);

  afterAll(async () => {
    await fleet?.close();
    await prometheus?.stop();
    await manager?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  }, 60_000);

  it('sees the check-ins, every host updated, the busy deferral and the rollout in progress, through its HTTP API', async () => {
    if (manager === undefined || prometheus === undefined) throw new Error('the manager or Prometheus did not start');
    const m = manager;
    const p = prometheus;
    // Scraping works with the metrics token before anything happens.
    expect(await eventually(p, 'up{job="drover-manager"}', (v) => v === 1)).toBe(1);

    await m.publish({ version: '1.0.0' });
    await m.publish({ version: '2.0.0' });
    const f = new FleetSimulator(m.url, { checkinEveryMs: 100 });
    fleet = f;
    // One host is busy for its first second with the update: it defers, and is never forced.
    await f.enroll(await m.createEnrollmentToken(HOSTS), [...Array.from({ length: HOSTS - 1 }, () => ({})), { busyForMs: 1_000 }]);
    f.start();
    // Soaks of 1.5 s keep the rollout in progress across several scrapes.
    const notified = await m.request('POST', '/manager/v1/updates/notify', {
      headers: { authorization: `Bearer ${m.deployToken}` },
      json: { version: '2.0.0', strategy: 'canary', metadata: { rollout: { soakSeconds: 1.5, healthGraceSeconds: 0.2, deferralWindowSeconds: 20, targetDeadlineSeconds: 30, deferralBackoffSeconds: 0.1 } } },
    });
    expect(notified.status, notified.text).toBe(200);
    const id = (notified.json as { deployment_id: string }).deployment_id;
    await waitFor(`deployment ${id} to complete`, async () => {
      const res = await m.request('GET', `/manager/v1/updates/status?deployment_id=${id}`, { headers: { authorization: `Bearer ${m.adminToken}` } });
      const status = res.json as { status: string; completed_at: string | null };
      return status.completed_at !== null ? status : undefined;
    }, 60_000, 100);
    expect(f.hosts.every((h) => h.version === '2.0.0')).toBe(true);

    // Every host's update reported succeeded: exactly the fleet's size, as Prometheus stored it. What
    // the last check-ins and engine ticks counted may reach Prometheus a scrape later: polled, bounded.
    expect(await eventually(p, 'sum(drover_update_outcomes_total{outcome="succeeded"})', (v) => v === HOSTS)).toBe(HOSTS);
    expect(await query(p, 'sum(drover_update_outcomes_total{outcome!="succeeded"})')).toBe(0);
    // Each host got its update command, each check-in that answered one was counted ok.
    expect(await query(p, 'drover_commands_delivered_total')).toBeGreaterThanOrEqual(HOSTS);
    expect(await eventually(p, 'drover_checkins_total{outcome="ok"}', (v) => v >= HOSTS * 2)).toBeGreaterThanOrEqual(HOSTS * 2);
    expect(await query(p, 'drover_agents')).toBe(HOSTS);
    expect(await query(p, 'drover_busy_deferrals_total')).toBeGreaterThanOrEqual(1);
    // Every committed update took a measured time from its command: HOSTS observations.
    expect(await eventually(p, 'drover_command_committed_seconds_count', (v) => v === HOSTS)).toBe(HOSTS);
    // A scrape landed while the rollout was in progress, and its phases passed their gates.
    expect(await query(p, 'max_over_time(drover_rollouts{status="in_progress"}[10m])')).toBe(1);
    expect(await eventually(p, 'drover_rollout_events_total{type="phase_passed"}', (v) => v === 3)).toBe(3);
    // The rollout is over: no active rollout is left in the gauge read from the store.
    expect(await eventually(p, 'sum(drover_rollouts) or vector(0)', (v) => v === 0)).toBe(0);
    // HTTP latency is labelled by route template, never by a host's id.
    expect(await eventually(p, 'sum(drover_http_request_duration_seconds_count{route="/v1/agents/:agentId/checkin",method="POST",status_class="2xx"})', (v) => v >= HOSTS * 2)).toBeGreaterThanOrEqual(HOSTS * 2);
    expect(await query(p, 'count({__name__=~"drover_.+", route=~".*agent-.*"}) or vector(0)')).toBe(0);
  }, 120_000);
});
