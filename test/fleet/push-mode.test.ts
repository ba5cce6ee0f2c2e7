// Push mode against real examples/agent processes: the manager calls each agent's
// POST /v1/system/shutdown with its service token and the CIRIS reason text; a small supervisor
// here plays the container restart policy (an agent that exits 0 comes back on the new version,
// on the same port). One agent answers 200, one is busy at boot (503, then 200), one holds another
// token (401).
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { formatShutdownReason, generateServiceToken, tokenId } from '@drover/protocol';
import { sanitizeReason } from '@drover/protocol/internal';
import type { DeploymentStatus } from '@drover/protocol';
import { startTestManager } from '../../packages/manager/test/harness.js';
import type { TestManager } from '../../packages/manager/test/harness.js';
import { killAgentProcesses, startAgentProcess } from './agent-process.js';
import type { AgentProcess } from './agent-process.js';
import { waitFor } from './fleet-simulator.js';

const children = new Set<AgentProcess>();
let manager: TestManager | undefined;
let server: Server | undefined;

afterEach(async () => {
  await killAgentProcesses(children);
  await manager?.close();
  manager = undefined;
  await new Promise<void>((resolve) => {
    if (server === undefined) resolve();
    else server.close(() => {
      resolve();
    });
  });
  server = undefined;
});

function startAgent(env: Record<string, string>): Promise<AgentProcess> {
  return startAgentProcess(['--import', 'tsx', 'examples/agent/agent.ts'], env, children);
}

/** The restart policy: when the agent exits 0, it comes back on `version`, same port and token. */
function superviseToNewVersion(agent: AgentProcess, env: Record<string, string>, version: string, restarted: AgentProcess[]): void {
  void agent.exited.then(async (code) => {
    if (code !== 0) return;
    restarted.push(await startAgent({ ...env, AGENT_PORT: String(agent.port), AGENT_VERSION: version }));
  });
}

describe('push mode (agents without a daemon)', () => {
  it('200, 503 then 200, 401 against real example agents; the reason is formatShutdownReason output', async () => {
    const m = await startTestManager({ rollout: { tickMs: 40 } });
    manager = m;
    const ok = await m.enroll();
    const busy = await m.enroll();
    const wrong = await m.enroll();
    const envOf = (token: string, extra: Record<string, string> = {}): Record<string, string> => ({ DROVER_SERVICE_TOKEN: token, AGENT_VERSION: '1.0.0', AGENT_DRAIN_TIMEOUT_MS: '2000', ...extra });
    const okEnv = envOf(ok.serviceToken);
    const busyEnv = envOf(busy.serviceToken, { AGENT_BUSY_MS: '4000' });
    // Busy for 4 s after it starts: long enough that the manager's first call finds it busy even on a loaded machine.
    const wrongToken = generateServiceToken();
    const [okAgent, busyAgent, wrongAgent] = await Promise.all([startAgent({ ...okEnv, AGENT_PORT: '0' }), startAgent({ ...busyEnv, AGENT_PORT: '0' }), startAgent({ ...envOf(wrongToken), AGENT_PORT: '0' })]);
    const restarted: AgentProcess[] = [];
    superviseToNewVersion(okAgent, { ...okEnv }, '2.0.0', restarted);
    // Back on the new version, it is no longer busy at boot.
    superviseToNewVersion(busyAgent, { ...busyEnv, AGENT_BUSY_MS: '0' }, '2.0.0', restarted);
    const admin = { authorization: `Bearer ${m.adminToken}` };
    for (const [agent, proc] of [[ok, okAgent], [busy, busyAgent], [wrong, wrongAgent]] as const) {
      const res = await m.request('PUT', `/v1/agents/${agent.agentId}/rollout`, { headers: admin, json: { pushUrl: `http://127.0.0.1:${proc.port}` } });
      expect(res.status, res.text).toBe(200);
    }
    const changelog = 'fix: memory leak in telemetry service\nfeat: add new monitoring endpoint\ntest: improve coverage';
    const notified = await m.request('POST', '/manager/v1/updates/notify', {
      headers: { authorization: `Bearer ${m.deployToken}` },
      json: { agent_image: 'ghcr.io/example/agent:2.0.0', version: '2.0.0', changelog, strategy: 'immediate', metadata: { rollout: { soakSeconds: 0, healthGraceSeconds: 0.2, maxFailures: 1, minHealthyRatio: 0, deferralBackoffSeconds: 0.2, deferralWindowSeconds: 20, targetDeadlineSeconds: 25 } } },
    });
    expect(notified.status, notified.text).toBe(200);
    const id = (notified.json as { deployment_id: string }).deployment_id;
    const s = await waitFor('the push deployment to end', async () => {
      const res = await m.request('GET', `/manager/v1/updates/status?deployment_id=${id}`, { headers: admin });
      const st = res.json as DeploymentStatus;
      return st.completed_at !== null ? st : undefined;
    }, 40_000, 100);
    const byAgent = new Map(s.agents.map((a) => [a.agent_id, a]));
    expect(byAgent.get(ok.agentId)?.state).toBe('succeeded');
    expect(byAgent.get(busy.agentId)?.state).toBe('succeeded');
    expect(byAgent.get(wrong.agentId)?.state).toBe('failed');
    expect(byAgent.get(wrong.agentId)?.error?.code).toBe('PUSH_UNAUTHORIZED');
    expect(s.agents_deferred).toBe(1);
    expect(s.status).toBe('completed');
    // The busy agent answered 503 first (logged by the agent), and was never forced.
    expect(busyAgent.lines().some((l) => l['event'] === 'shutdown_deferred')).toBe(true);
    expect(busyAgent.lines().filter((l) => l['event'] === 'shutdown_accepted').every((l) => l['force'] === false)).toBe(true);
    expect(wrongAgent.lines().some((l) => l['event'] === 'shutdown_accepted')).toBe(false);
    // The reason is formatShutdownReason's text (the agent logs it with control characters as spaces).
    const expected = formatShutdownReason({ version: '2.0.0', deploymentId: id, changelog });
    const accepted = okAgent.lines().find((l) => l['event'] === 'shutdown_accepted');
    expect(accepted?.['reason']).toBe(sanitizeReason(expected));
    expect(restarted.map((r) => r.lines().find((l) => l['event'] === 'listening')?.['version'])).toEqual(['2.0.0', '2.0.0']);
    const audit = await m.auditRecords();
    expect(audit.some((r) => r.event === 'deployment.agent_deferred' && r.agentId === busy.agentId)).toBe(true);
    expect(audit.some((r) => r.event === 'deployment.agent_failed' && r.agentId === wrong.agentId && r.details['code'] === 'PUSH_UNAUTHORIZED')).toBe(true);
    // One audit record per use of a service token, with its id (issue 15, C6): each 503 and the 200 of the busy agent, the 401.
    const usesOf = (agent: { agentId: string; serviceToken: string }): (string | undefined)[] =>
      audit.filter((r) => r.event === 'service_token.used' && r.agentId === agent.agentId).map((r) => (r.tokenId === tokenId(agent.serviceToken) ? r.outcome : 'another token id'));
    const busyCalls = busyAgent.lines().filter((l) => l['event'] === 'shutdown_deferred').length;
    expect(busyCalls).toBeGreaterThan(0);
    expect(usesOf(busy)).toEqual([...Array.from({ length: busyCalls }, () => 'deferred'), 'success']);
    expect(usesOf(ok)).toEqual(['success']);
    expect(usesOf(wrong)).toEqual(['denied']);
    expect(await m.leakedSecrets()).toEqual([]);
  });

  it('the body a push-mode agent receives carries exactly formatShutdownReason output, force false, confirm true', async () => {
    const m = await startTestManager({ rollout: { tickMs: 40 } });
    manager = m;
    const agent = await m.enroll();
    const bodies: { authorization: string | undefined; body: unknown; userAgent: string | undefined }[] = [];
    server = createServer((req, res) => {
      let text = '';
      req.on('data', (c: Buffer) => (text += c.toString('utf8')));
      req.on('end', () => {
        if (req.url === '/v1/system/shutdown') {
          bodies.push({ authorization: req.headers.authorization, body: JSON.parse(text), userAgent: req.headers['user-agent'] });
          res.writeHead(503, { 'retry-after': '1', 'content-type': 'application/json' }).end('{"error":{"code":"AGENT_BUSY","message":"busy"}}');
        } else res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"healthy","version":"1.0.0","busy":true}');
      });
    });
    await new Promise<void>((resolve) => {
      server?.listen(0, '127.0.0.1', () => {
        resolve();
      });
    });
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('no address');
    await m.request('PUT', `/v1/agents/${agent.agentId}/rollout`, { headers: { authorization: `Bearer ${m.adminToken}` }, json: { pushUrl: `http://127.0.0.1:${address.port}` } });
    const changelog = Array.from({ length: 400 }, (_, i) => `fix: a long line of release notes number ${i}`).join('\n');
    const res = await m.request('POST', '/manager/v1/updates/notify', { headers: { authorization: `Bearer ${m.deployToken}` }, json: { version: '2.0.0', commit_sha: 'abcdef1234567', changelog: 'fix: one\nfeat: two', strategy: 'immediate' } });
    const id = (res.json as { deployment_id: string }).deployment_id;
    const first = await waitFor('a shutdown call', () => bodies[0]);
    expect(first.body).toEqual({ reason: formatShutdownReason({ version: '2.0.0', commitSha: 'abcdef1234567', deploymentId: id, changelog: 'fix: one\nfeat: two' }), force: false, confirm: true });
    expect(first.authorization).toBe(`Bearer service:${agent.serviceToken}`);
    expect(first.userAgent).toMatch(/^drover-manager\//);
    // A changelog too long for the 4096-character reason is shortened, never the version or deployment.
    await m.request('POST', `/manager/v1/updates/${id}/abort`, { headers: { authorization: `Bearer ${m.adminToken}` } });
    const res2 = await m.request('POST', '/manager/v1/updates/notify', { headers: { authorization: `Bearer ${m.deployToken}` }, json: { version: '2.0.1', changelog, strategy: 'immediate', supersede: true } });
    const id2 = (res2.json as { deployment_id: string }).deployment_id;
    const long = await waitFor('a second shutdown call', () => bodies.find((b) => (b.body as { reason: string }).reason.includes(id2)));
    const reason = (long.body as { reason: string }).reason;
    expect(reason.length).toBeLessThanOrEqual(4096);
    expect(reason.startsWith(`System shutdown requested: Runtime: CD update to version v2.0.1 (deployment ${id2})\nRelease notes:\n  • fix: a long line of release notes number 0`)).toBe(true);
    expect(reason).toMatch(/more changes not shown\)\n\(API shutdown by wa-system-admin\)$/);
  });
});
