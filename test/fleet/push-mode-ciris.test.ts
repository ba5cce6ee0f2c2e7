// Push mode against test/fixtures/ciris-agent.cjs, a process answering /v1/system/health and
// /v1/system/shutdown in the real CIRIS agent's shapes (CIRISAgent 2bd11fcb): the health answer in
// its {data, metadata} envelope, no `busy`, `initializing` then `healthy` in WAKEUP then WORK.
// A supervisor here plays the container restart policy: an agent that exits 0 comes back on the
// new version, same port and token (decision 0035).
import { spawn } from 'node:child_process';
import type { ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import type { DeploymentStatus } from '@drover/protocol';
import { startTestManager } from '../../packages/manager/test/harness.js';
import type { TestManager } from '../../packages/manager/test/harness.js';
import { repoRoot } from '../helpers/cli.js';
import { waitFor } from './fleet-simulator.js';

interface CirisProcess {
  child: ChildProcessByStdio<null, Readable, Readable>;
  port: number;
  startedAt: number;
  exited: Promise<number | null>;
}

const children = new Set<CirisProcess>();
let manager: TestManager | undefined;

afterEach(async () => {
  for (const agent of children) agent.child.kill('SIGKILL');
  await Promise.all([...children].map((a) => a.exited));
  children.clear();
  await manager?.close();
  manager = undefined;
});

function startCirisAgent(env: Record<string, string>): Promise<CirisProcess> {
  const startedAt = Date.now();
  const child = spawn(process.execPath, ['test/fixtures/ciris-agent.cjs'], {
    cwd: repoRoot,
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', AGENT_HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => {
    child.on('exit', (code) => {
      resolve(code);
    });
  });
  return waitFor('the CIRIS fixture agent to listen', () => {
    const line = out.split('\n').find((l) => l.startsWith('{"event":"listening"'));
    if (line === undefined) return undefined;
    const agent: CirisProcess = { child, port: (JSON.parse(line) as { port: number }).port, startedAt, exited };
    children.add(agent);
    void exited.then(() => children.delete(agent));
    return agent;
  }, 15_000);
}

/** The restart policy: when the agent exits 0, it comes back with `env`, on the same port. */
function restartOnExit(agent: CirisProcess, env: Record<string, string>, restarted: CirisProcess[]): void {
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
    const enrolled = await m.enroll();
    const env = { CIRIS_SERVICE_TOKEN: enrolled.serviceToken, CIRIS_FIXTURE_WAKEUP_MS: '1000' };
    const old = await startCirisAgent({ ...env, CIRIS_VERSION: '2.9.33-stable', AGENT_PORT: '0' });
    const restarted: CirisProcess[] = [];
    restartOnExit(old, { ...env, CIRIS_VERSION: '2.9.34-stable' }, restarted);
    const put = await m.request('PUT', `/v1/agents/${enrolled.agentId}/rollout`, { headers: { authorization: `Bearer ${m.adminToken}` }, json: { pushUrl: `http://127.0.0.1:${old.port}` } });
    expect(put.status, put.text).toBe(200);
    const s = await pushDeploy(m, '2.9.34-stable', 25);
    expect(s.agents.find((a) => a.agent_id === enrolled.agentId)).toMatchObject({ state: 'succeeded' });
    expect(s.status).toBe('completed');
    expect(await old.exited).toBe(0);
    expect(restarted).toHaveLength(1);
    // The new version is `initializing` for 1 s, then `healthy` in WAKEUP for 1 s: not yet healthy.
    // Success needs WORK, then the 0.3 s grace period.
    const since = restarted[0]?.startedAt ?? 0;
    expect(Date.parse(s.completed_at ?? '')).toBeGreaterThanOrEqual(since + 2_000 + 300);
    expect(await m.leakedSecrets()).toEqual([]);
  }, 60_000);

  it('fails a new version that runs but stays critical at its deadline (TARGET_UNHEALTHY), never counting it healthy', async () => {
    const m = await startTestManager({ rollout: { tickMs: 40 } });
    manager = m;
    const enrolled = await m.enroll();
    const env = { CIRIS_SERVICE_TOKEN: enrolled.serviceToken, CIRIS_FIXTURE_WAKEUP_MS: '100' };
    const old = await startCirisAgent({ ...env, CIRIS_VERSION: '2.9.33-stable', AGENT_PORT: '0' });
    const restarted: CirisProcess[] = [];
    restartOnExit(old, { ...env, CIRIS_VERSION: '2.9.34-stable', CIRIS_FIXTURE_STATUS: 'critical' }, restarted);
    await m.request('PUT', `/v1/agents/${enrolled.agentId}/rollout`, { headers: { authorization: `Bearer ${m.adminToken}` }, json: { pushUrl: `http://127.0.0.1:${old.port}` } });
    const s = await pushDeploy(m, '2.9.34-stable', 4);
    expect(restarted).toHaveLength(1);
    expect(s.agents.find((a) => a.agent_id === enrolled.agentId)).toMatchObject({ state: 'failed', error: { code: 'TARGET_UNHEALTHY' } });
    const audit = await m.auditRecords();
    expect(audit.some((r) => r.event === 'deployment.agent_failed' && r.agentId === enrolled.agentId && r.details['code'] === 'TARGET_UNHEALTHY')).toBe(true);
    expect(audit.some((r) => r.event === 'deployment.agent_updated')).toBe(false);
    expect(s.agents_updated).toBe(0);
  }, 60_000);
});
