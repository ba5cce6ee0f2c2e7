// Push mode against test/fixtures/ciris-agent.cjs, a process answering /v1/system/health and
// /v1/system/shutdown in the real CIRIS agent's shapes (CIRISAgent 2bd11fcb): the health answer in
// its {data, metadata} envelope, no `busy`, `initializing` then `healthy` in WAKEUP then WORK.
// A supervisor here plays the container restart policy: an agent that exits 0 comes back on the
// new version, same port and token (decision 0035).
import { afterEach, describe, expect, it } from 'vitest';
import { generateServiceToken, tokenId } from '@drover/protocol';
import type { DeploymentStatus } from '@drover/protocol';
import { startTestManager } from '../../packages/manager/test/harness.js';
import type { TestManager } from '../../packages/manager/test/harness.js';
import { killAgentProcesses, startAgentProcess } from './agent-process.js';
import type { AgentProcess } from './agent-process.js';
import { waitFor } from './fleet-simulator.js';

const children = new Set<AgentProcess>();
let manager: TestManager | undefined;

afterEach(async () => {
  await killAgentProcesses(children);
  await manager?.close();
  manager = undefined;
});

function startCirisAgent(env: Record<string, string>): Promise<AgentProcess> {
  return startAgentProcess(['test/fixtures/ciris-agent.cjs'], env, children);
}

/** An enrolled agent on the fixture at 2.9.33-stable, coming back as 2.9.34-stable with `next` once it stops. */
async function startOldAgent(m: TestManager, next: Record<string, string>, agentToken?: string): Promise<{ agentId: string; serviceToken: string; old: AgentProcess; restarted: AgentProcess[] }> {
  const enrolled = await m.enroll();
  const env = { CIRIS_SERVICE_TOKEN: agentToken ?? enrolled.serviceToken };
  const old = await startCirisAgent({ ...env, CIRIS_VERSION: '2.9.33-stable', CIRIS_FIXTURE_WAKEUP_MS: '100', AGENT_PORT: '0' });
  const restarted: AgentProcess[] = [];
  restartOnExit(old, { ...env, CIRIS_VERSION: '2.9.34-stable', ...next }, restarted);
  const put = await m.request('PUT', `/v1/agents/${enrolled.agentId}/rollout`, { headers: { authorization: `Bearer ${m.adminToken}` }, json: { pushUrl: `http://127.0.0.1:${old.port}` } });
  expect(put.status, put.text).toBe(200);
  return { agentId: enrolled.agentId, serviceToken: enrolled.serviceToken, old, restarted };
}

/** The restart policy: when the agent exits 0, it comes back with `env`, on the same port. */
function restartOnExit(agent: AgentProcess, env: Record<string, string>, restarted: AgentProcess[]): void {
  void agent.exited.then(async (code) => {
    if (code !== 0) return;
    restarted.push(await startCirisAgent({ ...env, AGENT_PORT: String(agent.port) }));
  });
}

async function pushDeploy(m: TestManager, version: string, targetDeadlineSeconds: number): Promise<DeploymentStatus> {
  const admin = { authorization: `Bearer ${m.adminToken}` };
  const notified = await m.request('POST', '/manager/v1/updates/notify', {
    headers: { authorization: `Bearer ${m.deployToken}` },
    json: { agent_image: 'ghcr.io/cirisai/ciris-agent:latest', version, strategy: 'canary', source: 'github-actions', metadata: { rollout: { soakSeconds: 0, healthGraceSeconds: 0.3, maxFailures: 1, minHealthyRatio: 0, targetDeadlineSeconds } } },
  });
  expect(notified.status, notified.text).toBe(200);
  const id = (notified.json as { deployment_id: string }).deployment_id;
  return waitFor('the push deployment to end', async () => {
    const st = (await m.request('GET', `/manager/v1/updates/status?deployment_id=${id}`, { headers: admin })).json as DeploymentStatus;
    return st.completed_at !== null ? st : undefined;
  }, 40_000, 100);
}

describe('push mode against an agent answering in the real CIRIS shapes', () => {
  it('updates it: the shutdown is accepted, and success waits for healthy in the WORK cognitive state at the new version', async () => {
    const m = await startTestManager({ rollout: { tickMs: 40 } });
    manager = m;
    const { agentId, serviceToken, old, restarted } = await startOldAgent(m, { CIRIS_FIXTURE_WAKEUP_MS: '1000' });
    const s = await pushDeploy(m, '2.9.34-stable', 25);
    expect(s.agents.find((a) => a.agent_id === agentId)).toMatchObject({ state: 'succeeded' });
    expect(s.status).toBe('completed');
    expect(await old.exited).toBe(0);
    expect(restarted).toHaveLength(1);
    // The new version is `initializing` for 1 s, then `healthy` in WAKEUP for 1 s: not yet healthy.
    // Success needs WORK, then the 0.3 s grace period.
    const since = restarted[0]?.startedAt ?? 0;
    expect(Date.parse(s.completed_at ?? '')).toBeGreaterThanOrEqual(since + 2_000 + 300);
    // The one use of the service token (the accepted shutdown) is one audit record with its id (C6).
    const uses = (await m.auditRecords()).filter((r) => r.event === 'service_token.used');
    expect(old.lines().filter((l) => l['event'] === 'shutdown_request')).toEqual([{ event: 'shutdown_request', status: 200 }]);
    expect(uses).toHaveLength(1);
    expect(uses[0]).toMatchObject({ agentId, tokenId: tokenId(serviceToken), outcome: 'success', details: { route: 'POST /v1/system/shutdown', answer: 'accepted' } });
    expect(JSON.stringify(uses)).not.toContain(serviceToken);
    expect(await m.leakedSecrets()).toEqual([]);
  }, 60_000);

  it('audits every use of the service token with its id, a refused one (401) too, never the token', async () => {
    const m = await startTestManager({ rollout: { tickMs: 40 } });
    manager = m;
    // The agent holds another token: it refuses the manager's with the real agent's 401.
    const { agentId, serviceToken, old } = await startOldAgent(m, {}, generateServiceToken());
    const s = await pushDeploy(m, '2.9.34-stable', 10);
    expect(s.agents.find((a) => a.agent_id === agentId)).toMatchObject({ state: 'failed', error: { code: 'PUSH_UNAUTHORIZED' } });
    const requests = old.lines().filter((l) => l['event'] === 'shutdown_request');
    expect(requests).toEqual([{ event: 'shutdown_request', status: 401 }]);
    const uses = (await m.auditRecords()).filter((r) => r.event === 'service_token.used');
    expect(uses.map((r) => ({ agentId: r.agentId, tokenId: r.tokenId, outcome: r.outcome }))).toEqual(requests.map(() => ({ agentId, tokenId: tokenId(serviceToken), outcome: 'denied' })));
    expect(JSON.stringify(await m.auditRecords())).not.toContain(serviceToken);
    expect(await m.leakedSecrets()).toEqual([]);
  }, 60_000);

  it('fails a new version that runs but stays critical at its deadline (TARGET_UNHEALTHY), never counting it healthy', async () => {
    const m = await startTestManager({ rollout: { tickMs: 40 } });
    manager = m;
    const { agentId, restarted } = await startOldAgent(m, { CIRIS_FIXTURE_STATUS: 'critical' });
    const s = await pushDeploy(m, '2.9.34-stable', 4);
    expect(restarted).toHaveLength(1);
    expect(s.agents.find((a) => a.agent_id === agentId)).toMatchObject({ state: 'failed', error: { code: 'TARGET_UNHEALTHY' } });
    const audit = await m.auditRecords();
    expect(audit.some((r) => r.event === 'deployment.agent_failed' && r.agentId === agentId && r.details['code'] === 'TARGET_UNHEALTHY')).toBe(true);
    expect(audit.some((r) => r.event === 'deployment.agent_updated')).toBe(false);
    expect(s.agents_updated).toBe(0);
  }, 60_000);
});
