import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { defaultRolloutOptions } from '../../rollouts/options.js';
import type { DeploymentRecord, TargetRecord } from '../../rollouts/records.js';
import { hashSecret, newSecret } from '../../secrets.js';
import { SqliteStore } from './store.js';

let dir: string;
let path: string;
let store: SqliteStore;
const t0 = new Date('2026-01-01T00:00:00Z');
const at = (seconds: number): Date => new Date(t0.getTime() + seconds * 1000);

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'drover-rollout-store-'));
  path = join(dir, 'manager.db');
  store = SqliteStore.open(path);
  const secret = newSecret();
  await store.createEnrollmentToken({ tokenHash: hashSecret(secret), seats: 5, createdAt: t0, expiresAt: at(3600), createdBy: 'test' });
  for (const n of [1, 2]) {
    const result = await store.enrollAgent({
      tokenHash: hashSecret(secret), now: t0, newAgentId: `agent-${n}`, machineId: n.toString(16).padStart(64, '0'), hostname: 'h', platform: 'linux-x64',
      arch: 'x64', agentVersion: '1.0.0', daemonVersion: '0.5.0', inventory: {}, credentialHash: `c${n}`, serviceTokenCiphertext: 'x', allowReenrollment: true,
    });
    expect(result.ok).toBe(true);
  }
});
afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

function deployment(id: string): DeploymentRecord {
  return {
    id, artifact: 'agent', version: '2.0.0', commitSha: undefined, changelog: 'fix: x', strategy: 'canary', status: 'in_progress', message: 'm',
    options: defaultRolloutOptions, phases: [{ name: '50%' }, { name: '100%' }], notification: { version: '2.0.0' }, phaseIndex: 0, phaseState: 'rolling',
    phaseStartedAt: t0, soakUntil: undefined, createdBy: 'deploy:abc', createdAt: t0, startedAt: t0, completedAt: undefined, updatedAt: t0,
  };
}

function target(deploymentId: string, agentId: string, phase: number): TargetRecord {
  return {
    deploymentId, agentId, phase, state: 'pending', mode: 'daemon', fromVersion: '1.0.0', toVersion: '2.0.0', attempts: 0, commandId: undefined,
    rollbackCommandId: undefined, rollbackState: undefined, notifiedAt: undefined, deadlineAt: undefined, deferredCount: 0, firstDeferredAt: undefined,
    deferredUntil: undefined, healthySince: undefined, lastProbeAt: undefined, errorCode: undefined, message: undefined, updatedAt: t0,
  };
}

describe('SqliteStore rollouts', () => {
  it('persists every timestamp of a deployment and its targets across a reopen, and keeps one active deployment per artifact', async () => {
    const created = await store.createDeployment(deployment('dep-1'), [target('dep-1', 'agent-1', 0), target('dep-1', 'agent-2', 1)], [{ deploymentId: 'dep-1', at: t0, type: 'created', message: 'm', details: {} }]);
    expect(created).toEqual({ ok: true });
    expect(await store.createDeployment(deployment('dep-2'), [], [])).toEqual({ ok: false, active: 'dep-1' });
    const moved: TargetRecord = { ...target('dep-1', 'agent-1', 0), state: 'deferred', notifiedAt: at(1), deadlineAt: at(100), firstDeferredAt: at(2), deferredUntil: at(7), deferredCount: 1, attempts: 1, updatedAt: at(2) };
    await store.writeRollout({ deployment: { ...deployment('dep-1'), phaseState: 'soaking', soakUntil: at(300), updatedAt: at(3) }, targets: [moved], events: [{ deploymentId: 'dep-1', at: at(2), type: 'agent_deferred', message: 'busy', details: { agent_id: 'agent-1' } }] });
    await store.close();
    store = SqliteStore.open(path);
    expect(await store.getDeployment('dep-1')).toMatchObject({ phaseState: 'soaking', soakUntil: at(300), startedAt: t0, options: defaultRolloutOptions });
    expect((await store.listTargets('dep-1')).find((t) => t.agentId === 'agent-1')).toEqual(moved);
    expect((await store.countTargets('dep-1'))).toEqual({ byState: { deferred: 1, pending: 1 }, byPhase: [{ deferred: 1 }, { pending: 1 }], deferred: 1 });
    expect((await store.listTargetViews('dep-1', { open: true, phase: 0 })).map((t) => t.agentId)).toEqual(['agent-1']);
    expect((await store.listDeploymentEvents('dep-1', 0, 1, { latest: true })).map((e) => e.type)).toEqual(['agent_deferred']);
    expect(await store.listDeployments({ open: true, limit: 10 })).toHaveLength(1);
    expect(await store.setAgentRolloutSettings('agent-2', { group: 'explorer', pushUrl: 'http://127.0.0.1:1' })).toBe(true);
    expect(await store.getAgentRolloutSettings('agent-2')).toEqual({ group: 'explorer', pushUrl: 'http://127.0.0.1:1' });
    expect(await store.setAgentRolloutSettings('agent-9', { group: undefined, pushUrl: undefined })).toBe(false);
  });
});
