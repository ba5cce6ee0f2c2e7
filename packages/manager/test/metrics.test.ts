// GET /metrics against a real manager on 127.0.0.1:0: its own token (and the admin token), the
// stable refusals, values that follow what the manager did, one registry per manager, and no
// host id or secret in any label.
import { generateServiceToken, tokenId } from '@drover/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { errorOf, startTestManager } from './harness.js';
import type { TestManager } from './harness.js';

const managers: TestManager[] = [];
afterEach(async () => {
  await Promise.all(managers.splice(0).map((m) => m.close()));
});

async function start(metricsToken: string): Promise<TestManager> {
  const m = await startTestManager({ metricsTokens: [metricsToken] });
  m.secrets.add(metricsToken);
  managers.push(m);
  return m;
}

/** The value of one sample in the text exposition (`name{labels} value`), or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('GET /metrics', () => {
  it('refuses a request without a token (METRICS_AUTH_REQUIRED) or with another token (METRICS_AUTH_INVALID, audited), and serves the metrics and admin tokens', async () => {
    const metricsToken = generateServiceToken();
    const m = await start(metricsToken);
    const none = await m.request('GET', '/metrics');
    expect(none.status).toBe(401);
    expect(errorOf(none)['code']).toBe('METRICS_AUTH_REQUIRED');
    const stranger = generateServiceToken();
    const wrong = await m.request('GET', '/metrics', { headers: { authorization: `Bearer ${stranger}` } });
    expect(wrong.status).toBe(401);
    expect(errorOf(wrong)['code']).toBe('METRICS_AUTH_INVALID');
    expect(wrong.text).not.toContain(stranger);
    // The deploy token reads no metrics.
    const deploy = await m.request('GET', '/metrics', { headers: { authorization: `Bearer ${m.deployToken}` } });
    expect(errorOf(deploy)['code']).toBe('METRICS_AUTH_INVALID');
    const rejected = (await m.auditRecords()).filter((r) => r.event === 'token.rejected' && r.details['route'] === 'GET /metrics');
    expect(rejected.map((r) => r.tokenId)).toEqual([tokenId(stranger), tokenId(m.deployToken)]);

    for (const token of [metricsToken, m.adminToken]) {
      const ok = await m.request('GET', '/metrics', { headers: { authorization: `Bearer ${token}` } });
      expect(ok.status).toBe(200);
      expect(ok.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
      expect(ok.text).toContain('# TYPE drover_checkins_total counter');
    }
    expect(await m.leakedSecrets()).toEqual([]);
  });

  it('counts check-ins by outcome, commands delivered and HTTP requests by route template, with no host id in a label; each manager has its own registry', async () => {
    const metricsToken = generateServiceToken();
    const m = await start(metricsToken);
    const other = await start(generateServiceToken());
    const token = await m.createEnrollmentToken(3);
    const agents = [await m.enroll({ token }), await m.enroll({ token }), await m.enroll({ token })];
    for (const agent of agents) expect((await m.checkin(agent)).status).toBe(200);
    // A credential on another host's URL: refused, counted as unauthorized.
    const [first, second] = agents as [(typeof agents)[0], (typeof agents)[0]];
    expect((await m.request('POST', `/v1/agents/${second.agentId}/checkin`, { headers: { authorization: `Bearer ${first.credential}`, 'x-machine-id': first.machineId, 'x-agent-version': '1.0.0', 'x-daemon-version': '0.5.0' }, json: {} })).status).toBe(403);
    // A queued update command is delivered on the next check-in.
    await m.publish({ version: '1.1.0' });
    await m.app.manager.queueUpdate({ agentId: first.agentId, deploymentId: 'manual-1', artifact: 'agent', version: '1.1.0' });
    const withCommand = await m.checkin(first);
    expect((withCommand.json as { commands: unknown[] }).commands).toHaveLength(1);

    const text = (await m.request('GET', '/metrics', { headers: { authorization: `Bearer ${metricsToken}` } })).text;
    expect(sample(text, 'drover_checkins_total{outcome="ok"}')).toBe(4);
    expect(sample(text, 'drover_checkins_total{outcome="unauthorized"}')).toBe(1);
    expect(sample(text, 'drover_commands_delivered_total')).toBe(1);
    expect(sample(text, 'drover_agents')).toBe(3);
    expect(sample(text, 'drover_checkin_interval_seconds')).toBe(60);
    expect(sample(text, 'drover_http_request_duration_seconds_count{route="/v1/agents/:agentId/checkin",method="POST",status_class="2xx"}')).toBe(4);
    expect(sample(text, 'drover_http_request_duration_seconds_count{route="/v1/agents/enroll",method="POST",status_class="2xx"}')).toBe(3);
    expect(sample(text, 'drover_store_query_seconds_count{operation="recordCheckin",result="ok"}')).toBe(4);
    expect(sample(text, 'drover_audit_appends_total')).toBeGreaterThanOrEqual(8);
    for (const agent of agents) expect(text).not.toContain(agent.agentId);
    for (const secret of m.secrets) expect(text).not.toContain(secret);

    // The other manager in this process saw none of it.
    const otherText = (await other.request('GET', '/metrics', { headers: { authorization: `Bearer ${other.adminToken}` } })).text;
    expect(sample(otherText, 'drover_checkins_total{outcome="ok"}')).toBe(0);
    expect(sample(otherText, 'drover_agents')).toBe(0);
  });
});
