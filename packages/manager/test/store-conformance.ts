// The Store contract (src/store/store.ts), as one suite every implementation runs: SQLite
// (store-sqlite.test.ts) and PostgreSQL (store-postgres.test.ts). It checks what the manager relies
// on, never how a store keeps it: seats spent atomically (also by two stores on one database racing
// for the last seat), one active deployment per artifact (also when two stores create at once),
// single-use nonces, audit outbox rows written exactly with a committed change, persistence across
// a reopen, a schema newer than the code refused, STORE_CLOSED after close.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { expectRejection } from '../../../test/helpers/expect-error.js';
import { ManagerError } from '../src/errors.js';
import { defaultRolloutOptions } from '../src/rollouts/options.js';
import type { DeploymentRecord, TargetRecord } from '../src/rollouts/records.js';
import { hashSecret, newSecret } from '../src/secrets.js';
import { LIVENESS_FLUSH_MS } from '../src/store/sqlite/liveness-buffer.js';
import type { AgentFilter, EnrollAgentInput, ImportAgentInput, NewCommand, NewNonce } from '../src/store/records.js';
import type { Store } from '../src/store/store.js';

/** One empty database for one test, and the ways the suite reaches it. */
export interface StoreUnderTest {
  /** The store, open on a fresh, migrated, empty database. */
  store: Store;
  /** Opens another store on the same database (a second replica, or the same one after a restart). */
  open(): Promise<Store>;
  /** Records a migration newer than the code knows, as a newer manager would. */
  addFutureMigration(version: number): Promise<void>;
  /** Drops the database (after every store on it is closed). */
  dispose(): Promise<void>;
}

export const t0 = new Date('2026-01-01T00:00:00Z');
const at = (seconds: number): Date => new Date(t0.getTime() + seconds * 1000);
export const machine = (n: number): string => n.toString(16).padStart(64, '0');

/** An enrollment of `machineId` with the token of `tokenHash`, at t0. */
export function enrollInput(tokenHash: string, machineId: string, overrides: Partial<EnrollAgentInput> = {}): EnrollAgentInput {
  return {
    tokenHash,
    now: t0,
    newAgentId: `agent-${machineId.slice(-8)}`,
    machineId,
    hostname: 'h',
    platform: 'linux-x64',
    arch: 'x64',
    agentVersion: '1.0.0',
    daemonVersion: '0.1.0',
    inventory: {},
    credentialHash: hashSecret(newSecret()),
    serviceTokenCiphertext: 'ciphertext',
    allowReenrollment: true,
    ...overrides,
  };
}

function deployment(id: string, overrides: Partial<DeploymentRecord> = {}): DeploymentRecord {
  return {
    id, artifact: 'agent', version: '2.0.0', commitSha: undefined, changelog: 'fix: x', strategy: 'canary', status: 'in_progress', message: 'm',
    options: defaultRolloutOptions, phases: [{ name: '50%' }, { name: '100%' }], notification: { version: '2.0.0' }, phaseIndex: 0, phaseState: 'rolling',
    phaseStartedAt: t0, soakUntil: undefined, createdBy: 'deploy:abc', createdAt: t0, startedAt: t0, completedAt: undefined, updatedAt: t0,
    ...overrides,
  };
}

function target(deploymentId: string, agentId: string, phase: number): TargetRecord {
  return {
    deploymentId, agentId, phase, state: 'pending', mode: 'daemon', fromVersion: '1.0.0', toVersion: '2.0.0', attempts: 0, commandId: undefined,
    rollbackCommandId: undefined, rollbackState: undefined, notifiedAt: undefined, deadlineAt: undefined, deferredCount: 0, firstDeferredAt: undefined,
    deferredUntil: undefined, healthySince: undefined, lastProbeAt: undefined, errorCode: undefined, message: undefined, updatedAt: t0,
  };
}

const audit = (name: string): { body: string } => ({ body: JSON.stringify({ event: name }) });

/**
 * Runs the Store contract against the stores `create` makes, one fresh database per test. `skip`
 * (with its reason already printed) skips the whole suite.
 */
export function describeStoreConformance(name: string, create: () => Promise<StoreUnderTest>, skip = false): void {
  describe.skipIf(skip)(`Store conformance: ${name}`, () => {
    let db: StoreUnderTest;
    let created = false;
    let store: Store;
    const extra: Store[] = [];

    const open = async (): Promise<Store> => {
      const opened = await db.open();
      extra.push(opened);
      return opened;
    };

    async function token(seats: number, ttlMs = 3_600_000, on: Store = store): Promise<string> {
      const secret = newSecret();
      await on.createEnrollmentToken({ tokenHash: hashSecret(secret), seats, createdAt: t0, expiresAt: new Date(t0.getTime() + ttlMs), createdBy: 'test' });
      return hashSecret(secret);
    }

    async function enrolled(hash: string, n: number): Promise<string> {
      const result = await store.enrollAgent(enrollInput(hash, machine(n), { newAgentId: `agent-${n}` }));
      if (!result.ok) throw new Error(`enrollment failed: ${result.reason}`);
      return result.agent.id;
    }

    beforeEach(async () => {
      db = await create();
      store = db.store;
      created = true;
    });
    afterEach(async () => {
      for (const s of extra.splice(0)) await s.close();
      if (!created) return;
      created = false;
      await store.close();
      await db.dispose();
    });

    it('spends seats atomically and refuses once they are gone', async () => {
      const hash = await token(2);
      expect((await store.enrollAgent(enrollInput(hash, machine(1)))).ok).toBe(true);
      expect((await store.enrollAgent(enrollInput(hash, machine(2)))).ok).toBe(true);
      const third = await store.enrollAgent(enrollInput(hash, machine(3)));
      expect(third).toMatchObject({ ok: false, reason: 'token_exhausted' });
      expect(await store.countAgents()).toBe(2);
      const [record] = await store.listEnrollmentTokens();
      expect(record).toMatchObject({ seats: 2, used: 2 });
    });

    it('refuses unknown, expired and revoked tokens without spending a seat', async () => {
      expect(await store.enrollAgent(enrollInput(hashSecret('nope'), machine(1)))).toMatchObject({ ok: false, reason: 'token_unknown' });
      const expired = await token(5, 1000);
      expect(await store.enrollAgent(enrollInput(expired, machine(1), { now: new Date(t0.getTime() + 1000) }))).toMatchObject({ ok: false, reason: 'token_expired' });
      const revoked = await token(5);
      expect(await store.revokeEnrollmentToken(revoked.slice(0, 16), t0)).toBe(true);
      expect(await store.enrollAgent(enrollInput(revoked, machine(1)))).toMatchObject({ ok: false, reason: 'token_revoked' });
      expect((await store.listEnrollmentTokens()).every((t) => t.used === 0)).toBe(true);
      expect(await store.revokeEnrollmentToken('0000000000000000', t0)).toBe(false);
    });

    it('re-enrolls a known machine under its id with a new credential, or refuses when not allowed', async () => {
      const hash = await token(3);
      const first = await store.enrollAgent(enrollInput(hash, machine(7)));
      if (!first.ok) throw new Error('first enrollment failed');
      const credentialHash = hashSecret(newSecret());
      // Looked up before (a store may keep what it answered): the re-enrollment retires the old credential all the same.
      expect(await store.getAgentByCredentialHash(first.agent.credentialHash)).toMatchObject({ id: first.agent.id });
      const again = await store.enrollAgent(enrollInput(hash, machine(7), { newAgentId: 'agent-other', credentialHash, agentVersion: '1.1.0' }));
      expect(again).toMatchObject({ ok: true, reenrolled: true, previousCredentialHash: first.agent.credentialHash });
      if (!again.ok) throw new Error('unreachable');
      expect(again.agent.id).toBe(first.agent.id);
      expect(again.agent.credentialHash).toBe(credentialHash);
      expect(await store.getAgentByCredentialHash(first.agent.credentialHash)).toBeUndefined();
      expect(await store.getAgentByCredentialHash(credentialHash)).toEqual({ id: first.agent.id, machineId: machine(7), credentialHash, pending: false });
      expect(await store.enrollAgent(enrollInput(hash, machine(7), { allowReenrollment: false }))).toMatchObject({ ok: false, reason: 'already_enrolled', agentId: first.agent.id });
    });

    it('removes a host once: its credential shows it revoked, it is no candidate, its target is marked, and a re-enrollment brings it back', async () => {
      const hash = await token(3);
      const agentId = await enrolled(hash, 1);
      await enrolled(hash, 2);
      expect(await store.createDeployment(deployment('dep-1'), [target('dep-1', agentId, 0)], [])).toEqual({ ok: true });
      const credentialHash = (await store.getAgent(agentId))?.credentialHash ?? '';
      expect((await store.getAgentByCredentialHash(credentialHash))?.revokedAt).toBeUndefined();
      expect(await store.revokeAgent(agentId, at(5), [audit('agent.removed')])).toBe('revoked');
      expect(await store.revokeAgent(agentId, at(6), [audit('agent.removed.again')])).toBe('already');
      expect(await store.revokeAgent('agent-none', at(6), [audit('agent.removed.none')])).toBe('not_found');
      expect((await store.listAuditOutbox(10)).map((r) => r.body)).toEqual([audit('agent.removed').body]);
      const agent = await store.getAgent(agentId);
      expect(agent?.revokedAt).toEqual(at(5));
      expect((await store.getAgentByCredentialHash(agent?.credentialHash ?? ''))?.revokedAt).toEqual(at(5));
      expect((await store.listRolloutCandidates()).map((c) => c.id)).toEqual(['agent-2']);
      expect((await store.listTargetViews('dep-1'))[0]?.agentRevoked).toBe(true);
      expect((await store.enrollAgent(enrollInput(hash, machine(1)))).ok).toBe(true);
      expect((await store.getAgent(agentId))?.revokedAt).toBeUndefined();
      expect((await store.listTargetViews('dep-1'))[0]?.agentRevoked).toBe(false);
    });

    it('imports push-mode agents all or none: an id or machine already here writes nothing (decision 0036)', async () => {
      const hash = await token(1);
      const enrolledId = await enrolled(hash, 1);
      const imported = (id: string, machineId: string): ImportAgentInput => ({
        id, machineId, hostname: id, platform: 'push', arch: 'unknown', agentVersion: '1.0.0', daemonVersion: 'none',
        credentialHash: hashSecret(newSecret()), serviceTokenCiphertext: `ciphertext-${id}`, pushUrl: `http://10.0.0.9:${id.length}`, group: 'explorer',
      });
      const refused = await store.importAgents([imported('datum-main', machine(20)), imported(enrolledId, machine(21))], at(5), [audit('import.refused')]);
      expect(refused).toEqual({ ok: false, taken: [enrolledId] });
      expect(await store.importAgents([imported('other-main', machine(1))], at(5), [audit('import.machine')])).toEqual({ ok: false, taken: ['other-main'] });
      expect(await store.countAgents()).toBe(1);
      const ok = await store.importAgents([imported('datum-main', machine(20)), imported('scout-main', machine(21))], at(5), [audit('import.ok')]);
      expect(ok.ok && ok.agents.map((a) => [a.id, a.serviceTokenCiphertext, a.enrollmentTokenId])).toEqual([['datum-main', 'ciphertext-datum-main', undefined], ['scout-main', 'ciphertext-scout-main', undefined]]);
      expect(await store.getAgentRolloutSettings('scout-main')).toEqual({ group: 'explorer', pushUrl: 'http://10.0.0.9:10' });
      expect((await store.listRolloutCandidates()).map((c) => [c.id, c.pushUrl])).toEqual([[enrolledId, undefined], ['datum-main', 'http://10.0.0.9:10'], ['scout-main', 'http://10.0.0.9:10']]);
      expect((await store.listAuditOutbox(10)).map((r) => r.body)).toEqual([audit('import.ok').body]);
    });

    it('rotates a credential: pending beside the current one until promoted, replaced by a later one, dropped by a re-enrollment (decision 0032)', async () => {
      const hash = await token(2);
      const agentId = await enrolled(hash, 1);
      const current = (await store.getAgent(agentId))?.credentialHash ?? '';
      const [p1, p2] = [hashSecret('pending-1'), hashSecret('pending-2')];
      expect(await store.setPendingCredential(agentId, hashSecret('not-current'), p1, [audit('issued.refused')])).toBe(false);
      expect(await store.setPendingCredential(agentId, current, p1, [audit('issued.1')])).toBe(true);
      expect(await store.getAgentByCredentialHash(current)).toMatchObject({ id: agentId, credentialHash: current, pending: false });
      expect(await store.getAgentByCredentialHash(p1)).toMatchObject({ id: agentId, credentialHash: p1, pending: true });
      expect(await store.setPendingCredential(agentId, current, p2, [audit('issued.2')])).toBe(true);
      expect(await store.getAgentByCredentialHash(p1)).toBeUndefined();
      expect(await store.promoteCredential(agentId, p1, at(5), [audit('promoted.stale')])).toBe(false);
      expect(await store.promoteCredential(agentId, p2, at(5), [audit('promoted')])).toBe(true);
      expect(await store.promoteCredential(agentId, p2, at(6), [audit('promoted.twice')])).toBe(false);
      expect(await store.getAgentByCredentialHash(current)).toBeUndefined();
      expect(await store.getAgentByCredentialHash(p2)).toMatchObject({ id: agentId, pending: false });
      expect((await store.getAgent(agentId))?.credentialIssuedAt).toEqual(at(5));
      expect((await store.listAuditOutbox(10)).map((r) => r.body)).toEqual([audit('issued.1').body, audit('issued.2').body, audit('promoted').body]);
      // A removed host gets no pending credential; a re-enrollment clears one.
      const p3 = hashSecret('pending-3');
      expect(await store.setPendingCredential(agentId, p2, p3)).toBe(true);
      expect((await store.enrollAgent(enrollInput(hash, machine(1)))).ok).toBe(true);
      expect(await store.getAgentByCredentialHash(p3)).toBeUndefined();
      const now = (await store.getAgent(agentId))?.credentialHash ?? '';
      const p5 = hashSecret('pending-5');
      expect(await store.setPendingCredential(agentId, now, p5)).toBe(true);
      expect(await store.revokeAgent(agentId, at(7))).toBe('revoked');
      expect(await store.getAgentByCredentialHash(p5)).toBeUndefined();
      expect(await store.promoteCredential(agentId, p5, at(8))).toBe(false);
      expect(await store.setPendingCredential(agentId, now, hashSecret('pending-4'))).toBe(false);
    });

    it('two stores on one database racing for the last seat: exactly one enrollment wins', async () => {
      const hash = await token(3);
      await enrolled(hash, 1);
      await enrolled(hash, 2);
      const replicas = [store, await open(), await open()];
      const results = await Promise.all(Array.from({ length: 6 }, (_, i) => (replicas[i % replicas.length] as Store).enrollAgent(enrollInput(hash, machine(100 + i)))));
      expect(results.filter((r) => r.ok)).toHaveLength(1);
      expect(results.filter((r) => !r.ok)).toEqual(Array(5).fill(expect.objectContaining({ ok: false, reason: 'token_exhausted' })));
      expect(await store.countAgents()).toBe(3);
      expect((await store.listEnrollmentTokens())[0]).toMatchObject({ seats: 3, used: 3 });
    });

    it('lists agents in id order, page by page, and counts them', async () => {
      const hash = await token(5);
      for (const n of [3, 1, 2]) await enrolled(hash, n);
      expect((await store.listAgents({ limit: 2 })).map((a) => a.id)).toEqual(['agent-1', 'agent-2']);
      expect((await store.listAgents({ limit: 2, after: 'agent-2' })).map((a) => a.id)).toEqual(['agent-3']);
      expect(await store.countAgents()).toBe(3);
      expect(await store.getAgent('agent-9')).toBeUndefined();
    });

    it('filters the listing by search text, group, version and health, still page by page, and counts what the filter takes', async () => {
      const hash = await token(6);
      const hosts = [
        { n: 1, hostname: 'web-01.example', agentVersion: '1.0.0', health: 'healthy' },
        { n: 2, hostname: 'WEB-02.example', agentVersion: '1.1.0', health: 'degraded' },
        { n: 3, hostname: 'db_1', agentVersion: '1.1.0', health: 'healthy' },
        { n: 4, hostname: 'db%2', agentVersion: '1.0.0', health: undefined },
      ];
      for (const host of hosts) {
        const result = await store.enrollAgent(enrollInput(hash, machine(host.n), { newAgentId: `agent-${host.n}`, hostname: host.hostname, agentVersion: host.agentVersion }));
        if (!result.ok) throw new Error(`enrollment failed: ${result.reason}`);
        if (host.health !== undefined) {
          const checkin = { agentId: `agent-${host.n}`, at: at(host.n), agentVersion: host.agentVersion, daemonVersion: '0.1.0', health: { status: host.health }, update: undefined, inventory: undefined, commandLimit: 32 };
          await store.recordCheckin({ ...checkin, acks: [], results: [] });
        }
      }
      expect(await store.setAgentRolloutSettings('agent-2', { group: 'explorer', pushUrl: undefined })).toBe(true);
      expect(await store.setAgentRolloutSettings('agent-3', { group: 'explorer', pushUrl: undefined })).toBe(true);
      const ids = async (filter: AgentFilter, page: { limit?: number; after?: string } = {}): Promise<string[]> =>
        (await store.listAgents({ limit: 10, ...page, ...filter })).map((a) => a.id);

      // Search: case-insensitive, over id and hostname (and versions), wildcards taken literally.
      expect(await ids({ q: 'web' })).toEqual(['agent-1', 'agent-2']);
      expect(await ids({ q: 'AGENT-3' })).toEqual(['agent-3']);
      expect(await ids({ q: '1.1.' })).toEqual(['agent-2', 'agent-3']);
      expect(await ids({ q: '_' })).toEqual(['agent-3']);
      expect(await ids({ q: '%' })).toEqual(['agent-4']);
      expect(await ids({ q: "'; DROP TABLE agents; --" })).toEqual([]);
      expect(await ids({ q: '' })).toEqual(['agent-1', 'agent-2', 'agent-3', 'agent-4']);
      // Group, version, health, and all combined.
      expect(await ids({ group: 'explorer' })).toEqual(['agent-2', 'agent-3']);
      expect(await ids({ group: 'general' })).toEqual([]);
      expect(await ids({ version: '1.0.0' })).toEqual(['agent-1', 'agent-4']);
      expect(await ids({ health: 'healthy' })).toEqual(['agent-1', 'agent-3']);
      expect(await ids({ q: 'example', group: 'explorer', version: '1.1.0', health: 'degraded' })).toEqual(['agent-2']);
      // Keyset paging within a filter; the count is the filter's.
      expect(await ids({ version: '1.0.0' }, { limit: 1 })).toEqual(['agent-1']);
      expect(await ids({ version: '1.0.0' }, { limit: 1, after: 'agent-1' })).toEqual(['agent-4']);
      expect(await store.countAgents({ version: '1.0.0' })).toBe(2);
      expect(await store.countAgents({ q: 'db', health: 'healthy' })).toBe(1);
      expect(await store.countAgents({})).toBe(4);
      expect(await store.countAgents()).toBe(4);
    });

    it("gives a page of the fleet its agents' canary groups and oldest unacked commands", async () => {
      const hash = await token(3);
      for (const n of [1, 2, 3]) await enrolled(hash, n);
      expect(await store.setAgentRolloutSettings('agent-1', { group: 'explorer', pushUrl: undefined })).toBe(true);
      for (const n of [1, 2]) await store.insertCommand({ id: `cmd-${n}`, agentId: 'agent-2', type: 'update', deploymentId: `d${n}`, body: { n }, createdAt: at(n) });
      const details = await store.listFleetDetails(['agent-1', 'agent-2', 'agent-3', 'agent-9']);
      const byId = new Map(details.map((d) => [d.agentId, d]));
      expect([...byId.keys()].sort()).toEqual(['agent-1', 'agent-2', 'agent-3']);
      expect(byId.get('agent-1')).toEqual({ agentId: 'agent-1', group: 'explorer', pendingCommand: undefined });
      expect(byId.get('agent-2')).toMatchObject({ group: undefined, pendingCommand: { id: 'cmd-1', deploymentId: 'd1' } });
      expect(byId.get('agent-3')?.pendingCommand).toBeUndefined();
      expect(await store.listFleetDetails([])).toEqual([]);
    });

    it('delivers commands until acked, consumes a nonce once, and rolls a replayed check-in back', async () => {
      const hash = await token(1);
      const agentId = await enrolled(hash, 9);
      await store.insertCommand(
        { id: 'cmd-1', agentId, type: 'update', deploymentId: 'd1', body: { id: 'cmd-1', type: 'update' }, createdAt: t0 },
        { id: 'nonce-0123456789abcdef', agentId, machineId: machine(9), commandId: 'cmd-1', deploymentId: 'd1', artifact: 'agent', fromVersion: '1.0.0', toVersion: '1.1.0', rollback: false, token: 'a.b', issuedAt: t0, expiresAt: t0 },
      );
      expect(await store.getNonce('nonce-0123456789abcdef')).toMatchObject({ rollback: false, consumedAt: undefined, commandId: 'cmd-1' });
      const base = { agentId, at: t0, agentVersion: '1.0.0', daemonVersion: '0.1.0', health: { status: 'healthy' }, update: undefined, inventory: undefined, commandLimit: 32 };
      const first = await store.recordCheckin({ ...base, acks: [], results: [] });
      expect(first).toMatchObject({ ok: true, commands: [{ id: 'cmd-1', deliveredCount: 1, body: { id: 'cmd-1', type: 'update' } }] });
      const second = await store.recordCheckin({ ...base, acks: [], results: [] });
      expect(second).toMatchObject({ ok: true, commands: [{ id: 'cmd-1', deliveredCount: 2 }] });
      const acked = await store.recordCheckin({ ...base, acks: ['cmd-1'], results: [] });
      expect(acked).toEqual({ ok: true, commands: [] });
      const result = { commandId: 'cmd-1', outcome: 'succeeded', detail: {}, consumeNonce: { nonceId: 'nonce-0123456789abcdef', reportedVersion: '1.1.0' } };
      expect(await store.recordCheckin({ ...base, agentVersion: '1.1.0', acks: [], results: [result] })).toEqual({ ok: true, commands: [] });
      expect(await store.getNonce('nonce-0123456789abcdef')).toMatchObject({ consumedOutcome: 'succeeded', reportedVersion: '1.1.0', consumedAt: t0 });
      const replay = await store.recordCheckin({ ...base, agentVersion: '9.9.9', acks: [], results: [result], audit: [audit('replayed')] });
      expect(replay).toEqual({ ok: false, reason: 'nonce_replayed', nonceId: 'nonce-0123456789abcdef', commandId: 'cmd-1' });
      // Nothing of the refused check-in was written, its audit record included.
      expect((await store.getAgent(agentId))?.agentVersion).toBe('1.1.0');
      expect(await store.listAuditOutbox(10)).toEqual([]);
      expect(await store.getCommand('cmd-1')).toMatchObject({ outcome: 'succeeded', ackedAt: t0, deliveredCount: 2 });
      expect((await store.listCommands(agentId)).map((c) => c.id)).toEqual(['cmd-1']);
    });

    it('records reports that arrive together each on its own: a replayed one is refused alone, the others are kept across a reopen', async () => {
      const hash = await token(3);
      const agents = [await enrolled(hash, 11), await enrolled(hash, 12), await enrolled(hash, 13)];
      const nonceOf = (i: number): string => `nonce-grouped-${i}`;
      for (const [i, agentId] of agents.entries()) {
        await store.insertCommand(
          { id: `cmd-g${i}`, agentId, type: 'update', deploymentId: 'd1', body: { id: `cmd-g${i}` }, createdAt: t0 },
          { id: nonceOf(i), agentId, machineId: machine(11 + i), commandId: `cmd-g${i}`, deploymentId: 'd1', artifact: 'agent', fromVersion: '1.0.0', toVersion: '1.1.0', rollback: false, token: 'a.b', issuedAt: t0, expiresAt: t0 },
        );
      }
      const report = (i: number, agentId: string): Parameters<Store['recordCheckin']>[0] => ({
        agentId, at: at(5), agentVersion: '1.1.0', daemonVersion: '0.1.0', health: {}, update: undefined, inventory: undefined, acks: [`cmd-g${i}`], commandLimit: 32,
        results: [{ commandId: `cmd-g${i}`, outcome: 'succeeded', detail: {}, consumeNonce: { nonceId: nonceOf(i), reportedVersion: '1.1.0' } }],
        audit: [audit(`report.${i}`)],
      });
      // Agent 0 reported before: its second report comes back replayed; all three are sent at once.
      expect(await store.recordCheckin(report(0, agents[0] ?? ''))).toEqual({ ok: true, commands: [] });
      const answers = await Promise.all(agents.map((agentId, i) => store.recordCheckin(report(i, agentId))));
      expect(answers).toEqual([{ ok: false, reason: 'nonce_replayed', nonceId: nonceOf(0), commandId: 'cmd-g0' }, { ok: true, commands: [] }, { ok: true, commands: [] }]);
      await store.close();
      store = await db.open();
      for (const i of [1, 2]) expect(await store.getNonce(nonceOf(i))).toMatchObject({ consumedOutcome: 'succeeded', reportedVersion: '1.1.0' });
      // The three commits may land in any order on a store that runs them side by side (PostgreSQL).
      expect((await store.listAuditOutbox(10)).map((r) => r.body).sort()).toEqual([audit('report.0').body, audit('report.1').body, audit('report.2').body]);
    });

    it('returns at most commandLimit unacked commands, oldest first', async () => {
      const agentId = await enrolled(await token(1), 1);
      for (const n of [1, 2, 3]) await store.insertCommand({ id: `cmd-${n}`, agentId, type: 'update', body: { n }, createdAt: at(n) });
      const base = { agentId, at: t0, agentVersion: '1.0.0', daemonVersion: '0.1.0', health: {}, update: { step: 'x' }, inventory: { os: 'linux' }, acks: [], results: [] };
      expect(await store.recordCheckin({ ...base, commandLimit: 2 })).toMatchObject({ ok: true, commands: [{ id: 'cmd-1' }, { id: 'cmd-2' }] });
      expect(await store.recordCheckin({ ...base, acks: ['cmd-1', 'cmd-2'], commandLimit: 2 })).toMatchObject({ ok: true, commands: [{ id: 'cmd-3', deliveredCount: 1 }] });
      expect(await store.getAgent(agentId)).toMatchObject({ update: { step: 'x' }, inventory: { os: 'linux' }, lastCheckinAt: t0 });
    });

    it('withdraws, with their targets, only commands no check-in handed out: those are never delivered; a delivered one stays', async () => {
      const hash = await token(2);
      const [a1, a2] = [await enrolled(hash, 3), await enrolled(hash, 4)];
      expect(await store.createDeployment(deployment('dep-1'), [target('dep-1', a1, 0), target('dep-1', a2, 0)], [])).toEqual({ ok: true });
      const command = (id: string, agentId: string, n: number): { command: NewCommand; nonce: NewNonce } => ({
        command: { id, agentId, type: 'update', deploymentId: 'dep-1', body: { id }, createdAt: at(1) },
        nonce: { id: `nonce-${id}`, agentId, machineId: machine(n), commandId: id, deploymentId: 'dep-1', artifact: 'agent', fromVersion: '1.0.0', toVersion: '2.0.0', rollback: false, token: 't', issuedAt: at(1), expiresAt: at(100) },
      });
      const notified = (agentId: string, commandId: string): TargetRecord => ({ ...target('dep-1', agentId, 0), state: 'notified', commandId, notifiedAt: at(1) });
      await store.writeRollout({ commands: [command('cmd-1', a1, 3), command('cmd-2', a2, 4)], targets: [notified(a1, 'cmd-1'), notified(a2, 'cmd-2')] });
      const base = { at: t0, agentVersion: '1.0.0', daemonVersion: '0.1.0', health: {}, update: undefined, inventory: undefined, acks: [], results: [], commandLimit: 32 };
      expect(await store.recordCheckin({ ...base, agentId: a1 })).toMatchObject({ ok: true, commands: [{ id: 'cmd-1' }] });
      // Both are withdrawn in one step: cmd-1 went out and stays, with its target; cmd-2 is withdrawn and its target skipped.
      const skipped = (t: TargetRecord, message: string): TargetRecord => ({ ...t, state: 'skipped', errorCode: 'DEPLOYMENT_STOPPED', message, updatedAt: at(9) });
      await store.writeRollout({
        withdraw: [{ commandId: 'cmd-1', target: skipped(notified(a1, 'cmd-1'), 'stopped') }, { commandId: 'cmd-2', target: skipped(notified(a2, 'cmd-2'), 'stopped') }],
        audit: [audit('deployment.abort')],
      });
      expect(await store.getCommand('cmd-1')).toMatchObject({ outcome: undefined, ackedAt: undefined, deliveredCount: 1 });
      expect(await store.getCommand('cmd-2')).toMatchObject({ outcome: 'withdrawn', ackedAt: at(9), deliveredCount: 0 });
      expect((await store.listTargets('dep-1')).map((t) => [t.agentId, t.state, t.message])).toEqual([[a1, 'notified', undefined], [a2, 'skipped', 'stopped']]);
      // Withdrawing again changes nothing: the command is retired already, and its target is not written twice.
      await store.writeRollout({ withdraw: [{ commandId: 'cmd-2', target: skipped(notified(a2, 'cmd-2'), 'again') }] });
      expect((await store.listTargets('dep-1')).find((t) => t.agentId === a2)?.message).toBe('stopped');
      // From now on a check-in hands out cmd-1 again, never cmd-2.
      expect(await store.recordCheckin({ ...base, agentId: a1 })).toMatchObject({ ok: true, commands: [{ id: 'cmd-1' }] });
      expect(await store.recordCheckin({ ...base, agentId: a2 })).toEqual({ ok: true, commands: [] });
    });

    it('buffers plain check-ins but never lets a reader, a durable write or a restart miss them', async () => {
      const hash = await token(2);
      const a = await enrolled(hash, 21);
      const b = await enrolled(hash, 22);
      const base = { at: new Date(t0.getTime() + 1000), daemonVersion: '0.1.0', health: { status: 'healthy' }, update: undefined, inventory: undefined, acks: [], results: [], commandLimit: 32 };
      await store.recordCheckin({ ...base, agentId: a, agentVersion: '1.0.1' });
      expect((await store.getAgent(a))?.agentVersion).toBe('1.0.1');
      // The buffer's flush timer runs on vitest's clock: the test moves it past the flush instead of sleeping.
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
      try {
        await store.recordCheckin({ ...base, agentId: a, agentVersion: '1.0.2' });
        // A later durable check-in (it acks) is not overwritten by the older buffered one.
        const durable = store.recordCheckin({ ...base, agentId: a, agentVersion: '1.0.5', acks: ['cmd-none'] });
        vi.advanceTimersByTime(LIVENESS_FLUSH_MS * 2);
        await durable;
        vi.advanceTimersByTime(LIVENESS_FLUSH_MS * 2);
      } finally {
        vi.useRealTimers();
      }
      expect((await store.getAgent(a))?.agentVersion).toBe('1.0.5');
      // Check-ins of an agent with a pending command are written at once.
      await store.insertCommand({ id: 'cmd-b', agentId: b, type: 'update', body: {}, createdAt: t0 });
      await store.recordCheckin({ ...base, agentId: b, agentVersion: '2.0.0' });
      await store.recordCheckin({ ...base, agentId: a, agentVersion: '1.0.6' });
      await store.close();
      store = await db.open();
      expect((await store.getAgent(a))?.agentVersion).toBe('1.0.6');
      expect((await store.getAgent(b))?.agentVersion).toBe('2.0.0');
      expect((await store.getAgent(a))?.lastCheckinAt).toEqual(base.at);
      // The reopened store still hands b its command at a plain check-in, and a nothing.
      expect(await store.recordCheckin({ ...base, agentId: b, agentVersion: '2.0.0' })).toMatchObject({ ok: true, commands: [{ id: 'cmd-b' }] });
      expect(await store.recordCheckin({ ...base, agentId: a, agentVersion: '1.0.6' })).toEqual({ ok: true, commands: [] });
    });

    it('keeps releases by artifact, version and platform, inserts once, publishes a pending one once', async () => {
      const release = {
        artifact: 'agent', version: 'v2.0.0', versionKey: '2.0.0', platform: 'linux-x64', channel: 'stable', file: { name: 'agent.js', size: 5_000_000_000, sha256: 'ab'.repeat(32) },
        envelope: { payloadType: 'x', payload: 'e30', signatures: [] }, manifest: { version: 'v2.0.0', nested: { b: 1, a: [1, 2] } }, createdAt: t0, expiresAt: at(86400),
        state: 'pending' as const, registeredAt: t0, publishedBy: 'deploy:abc',
      };
      expect(await store.insertRelease(release, [audit('release.registered')])).toBe('inserted');
      expect(await store.insertRelease({ ...release, channel: 'beta' }, [audit('release.again')])).toBe('exists');
      await store.insertRelease({ ...release, platform: 'linux-arm64', channel: 'beta', registeredAt: at(1) });
      expect(await store.getRelease('agent', '2.0.0', 'linux-x64')).toEqual({ ...release, publishedAt: undefined });
      expect((await store.listReleases({ artifact: 'agent' })).map((r) => r.platform)).toEqual(['linux-x64', 'linux-arm64']);
      expect((await store.listReleases({ artifact: 'agent', channel: 'beta' })).map((r) => r.platform)).toEqual(['linux-arm64']);
      expect(await store.markReleasePublished('agent', '2.0.0', 'linux-x64', at(5), [audit('release.published')])).toBe(true);
      expect(await store.markReleasePublished('agent', '2.0.0', 'linux-x64', at(6), [audit('release.published.twice')])).toBe(false);
      expect(await store.getRelease('agent', '2.0.0', 'linux-x64')).toMatchObject({ state: 'published', publishedAt: at(5) });
      expect((await store.listReleases({ artifact: 'agent', state: 'published' })).map((r) => r.platform)).toEqual(['linux-x64']);
      expect((await store.listAuditOutbox(10)).map((r) => r.body)).toEqual([audit('release.registered').body, audit('release.published').body]);
    });

    it('writes audit outbox rows only with a committed change, in order, and completes them with the head', async () => {
      const hash = await token(1, 3_600_000);
      // Refusals and no-ops write nothing.
      expect(await store.revokeEnrollmentToken('0000000000000000', t0, [audit('revoke.unknown')])).toBe(false);
      const refused = await store.enrollAgent(enrollInput(hashSecret('nope'), machine(1)), () => [audit('enroll.refused')]);
      expect(refused.ok).toBe(false);
      expect(await store.setAgentRolloutSettings('agent-none', { group: 'explorer', pushUrl: undefined }, [audit('settings.none')])).toBe(false);
      expect(await store.listAuditOutbox(10)).toEqual([]);
      // Changes write theirs, in commit order.
      const agentId = (await store.enrollAgent(enrollInput(hash, machine(2), { newAgentId: 'agent-2' }), (e) => [audit(`enrolled:${e.agent.id}`)])).ok ? 'agent-2' : '';
      await store.insertCommand({ id: 'cmd-1', agentId, type: 'update', body: {}, createdAt: t0 }, undefined, [audit('command')]);
      expect(await store.setAgentRolloutSettings(agentId, { group: 'general', pushUrl: undefined }, [audit('settings')])).toBe(true);
      await store.appendAudit([audit('plain.1'), audit('plain.2')]);
      await store.writeRollout({ events: [], audit: [audit('rollout.write')] });
      const rows = await store.listAuditOutbox(10);
      expect(rows.map((r) => r.body)).toEqual(['enrolled:agent-2', 'command', 'settings', 'plain.1', 'plain.2', 'rollout.write'].map((e) => audit(e).body));
      expect(rows.map((r) => r.id)).toEqual([...rows.map((r) => r.id)].sort((x, y) => x - y));
      expect((await store.listAuditOutbox(2)).map((r) => r.id)).toEqual(rows.slice(0, 2).map((r) => r.id));
      await store.completeAuditOutbox(rows.slice(0, 4).map((r) => r.id), 'audit.head', 'head-4');
      expect((await store.listAuditOutbox(10)).map((r) => r.body)).toEqual([audit('plain.2').body, audit('rollout.write').body]);
      expect(await store.getMeta('audit.head')).toBe('head-4');
      await store.setMeta('audit.head', 'head-5');
      expect(await store.getMeta('audit.head')).toBe('head-5');
      expect(await store.getMeta('missing')).toBeUndefined();
    });

    it('persists every timestamp of a deployment and its targets across a reopen, and keeps one active deployment per artifact', async () => {
      const hash = await token(5);
      await enrolled(hash, 1);
      await enrolled(hash, 2);
      const created = await store.createDeployment(deployment('dep-1'), [target('dep-1', 'agent-1', 0), target('dep-1', 'agent-2', 1)], [{ deploymentId: 'dep-1', at: t0, type: 'created', message: 'm', details: {} }], [], [audit('deployment.created')]);
      expect(created).toEqual({ ok: true });
      expect(await store.createDeployment(deployment('dep-2'), [], [], [], [audit('deployment.refused')])).toEqual({ ok: false, active: 'dep-1' });
      expect((await store.listAuditOutbox(10)).map((r) => r.body)).toEqual([audit('deployment.created').body]);
      const moved: TargetRecord = { ...target('dep-1', 'agent-1', 0), state: 'deferred', notifiedAt: at(1), deadlineAt: at(100), firstDeferredAt: at(2), deferredUntil: at(7), deferredCount: 1, attempts: 1, updatedAt: at(2) };
      await store.writeRollout({ deployment: { ...deployment('dep-1'), phaseState: 'soaking', soakUntil: at(300), updatedAt: at(3) }, targets: [moved], events: [{ deploymentId: 'dep-1', at: at(2), type: 'agent_deferred', message: 'busy', details: { agent_id: 'agent-1' } }] });
      await store.close();
      store = await db.open();
      expect(await store.getDeployment('dep-1')).toMatchObject({ phaseState: 'soaking', soakUntil: at(300), startedAt: t0, options: defaultRolloutOptions });
      expect(await store.getDeployment('dep-9')).toBeUndefined();
      expect((await store.listTargets('dep-1')).find((t) => t.agentId === 'agent-1')).toEqual(moved);
      expect(await store.countTargets('dep-1')).toEqual({ byState: { deferred: 1, pending: 1 }, byPhase: [{ deferred: 1 }, { pending: 1 }], deferred: 1 });
      expect((await store.listTargetViews('dep-1', { open: true, phase: 0 })).map((t) => t.agentId)).toEqual(['agent-1']);
      expect((await store.listTargetViews('dep-1')).map((t) => [t.agentId, t.agentVersion, t.command])).toEqual([['agent-1', '1.0.0', undefined], ['agent-2', '1.0.0', undefined]]);
      expect((await store.listDeploymentEvents('dep-1', 0, 1, { latest: true })).map((e) => e.type)).toEqual(['agent_deferred']);
      const events = await store.listDeploymentEvents('dep-1', 0, 10);
      expect(events.map((e) => [e.type, e.at, e.details])).toEqual([['created', t0, {}], ['agent_deferred', at(2), { agent_id: 'agent-1' }]]);
      expect((await store.listDeploymentEvents(undefined, events[0]?.seq ?? 0, 10)).map((e) => e.type)).toEqual(['agent_deferred']);
      expect(await store.listDeployments({ open: true, limit: 10 })).toHaveLength(1);
      expect(await store.listDeployments({ active: true, limit: 10 })).toHaveLength(1);
      expect(await store.setAgentRolloutSettings('agent-2', { group: 'explorer', pushUrl: 'http://127.0.0.1:1' })).toBe(true);
      expect(await store.getAgentRolloutSettings('agent-2')).toEqual({ group: 'explorer', pushUrl: 'http://127.0.0.1:1' });
      expect(await store.setAgentRolloutSettings('agent-9', { group: undefined, pushUrl: undefined })).toBe(false);
      expect((await store.listRolloutCandidates()).map((c) => [c.id, c.group])).toEqual([['agent-1', undefined], ['agent-2', 'explorer']]);
    });

    it('writes a target with its command and nonce in one step, and shows the command in the target view', async () => {
      const agentId = await enrolled(await token(1), 1);
      expect(await store.createDeployment(deployment('dep-1'), [target('dep-1', agentId, 0)], [])).toEqual({ ok: true });
      const command = { id: 'cmd-u', agentId, type: 'update', deploymentId: 'dep-1', body: { id: 'cmd-u' }, createdAt: at(1) };
      const nonce = { id: 'nonce-u', agentId, machineId: machine(1), commandId: 'cmd-u', deploymentId: 'dep-1', artifact: 'agent', fromVersion: '1.0.0', toVersion: '2.0.0', rollback: true, token: 't', issuedAt: at(1), expiresAt: at(100) };
      await store.writeRollout({ commands: [{ command, nonce }], targets: [{ ...target('dep-1', agentId, 0), state: 'notified', commandId: 'cmd-u', notifiedAt: at(1) }] });
      expect(await store.getNonce('nonce-u')).toMatchObject({ rollback: true, expiresAt: at(100) });
      const [view] = await store.listTargetViews('dep-1', { open: true });
      expect(view).toMatchObject({ state: 'notified', command: { ackedAt: undefined, outcome: undefined } });
      await store.recordCheckin({ agentId, at: at(2), agentVersion: '1.0.0', daemonVersion: '0.1.0', health: {}, update: undefined, inventory: undefined, acks: [], commandLimit: 32, results: [{ commandId: 'cmd-u', outcome: 'deferred', detail: { why: 'busy' } }] });
      expect((await store.listTargetViews('dep-1'))[0]?.command).toEqual({ ackedAt: at(2), outcome: 'deferred', detail: { why: 'busy' } });
    });

    it('writes a deployment of more targets than one statement binds, with their commands, nonces and events in order; a target written twice keeps the last', async () => {
      const n = 3_000;
      const ids = Array.from({ length: n }, (_, i) => `agent-${String(i).padStart(4, '0')}`);
      const imported = await store.importAgents(
        ids.map((id, i) => ({
          id, machineId: machine(i), hostname: id, platform: 'push', arch: 'unknown', agentVersion: '1.0.0', daemonVersion: 'none',
          credentialHash: hashSecret(id), serviceTokenCiphertext: 'ciphertext', pushUrl: 'http://127.0.0.1:1', group: undefined,
        })),
        t0,
      );
      expect(imported.ok).toBe(true);
      const events = ids.slice(0, 50).map((id, i) => ({ deploymentId: 'dep-1', at: at(i), type: 'agent_notified', message: id, details: { i } }));
      expect(await store.createDeployment(deployment('dep-1'), ids.map((id, i) => target('dep-1', id, i % 3)), events)).toEqual({ ok: true });
      expect((await store.listTargets('dep-1')).map((t) => [t.agentId, t.phase])).toEqual(ids.map((id, i) => [id, i % 3]).sort((a, b) => Number(a[1]) - Number(b[1])));
      expect((await store.listDeploymentEvents('dep-1', 0, 100)).map((e) => e.message)).toEqual(ids.slice(0, 50));
      const commands = ids.map((agentId, i) => ({
        command: { id: `cmd-${i}`, agentId, type: 'update', deploymentId: 'dep-1', body: { i }, createdAt: at(1) },
        nonce: { id: `nonce-${i}`, agentId, machineId: machine(i), commandId: `cmd-${i}`, deploymentId: 'dep-1', artifact: 'agent', fromVersion: '1.0.0', toVersion: '2.0.0', rollback: false, token: `t${i}`, issuedAt: at(1), expiresAt: at(100) },
      }));
      const notified = ids.map((id, i): TargetRecord => ({ ...target('dep-1', id, i % 3), state: 'notified', commandId: `cmd-${i}`, notifiedAt: at(1) }));
      // agent-0000 twice in one write: the second (failed) is what stays.
      const failed: TargetRecord = { ...target('dep-1', 'agent-0000', 0), state: 'failed', commandId: 'cmd-0', errorCode: 'HEALTH_CHECK_FAILED', updatedAt: at(2) };
      await store.writeRollout({ commands, targets: [...notified, failed] });
      const written = await store.listTargets('dep-1');
      expect(written).toHaveLength(n);
      expect(written.filter((t) => t.state === 'notified')).toHaveLength(n - 1);
      expect(written.find((t) => t.agentId === 'agent-0000')).toMatchObject({ state: 'failed', errorCode: 'HEALTH_CHECK_FAILED', commandId: 'cmd-0' });
      expect(await store.getCommand(`cmd-${n - 1}`)).toMatchObject({ agentId: ids[n - 1], body: { i: n - 1 } });
      expect(await store.getNonce(`nonce-${n - 1}`)).toMatchObject({ commandId: `cmd-${n - 1}`, token: `t${n - 1}` });
    }, 60_000);

    it("bounds the engine's read of a phase's pending targets, keeping every moving one and the order", async () => {
      const hash = await token(5);
      for (let i = 1; i <= 5; i++) await enrolled(hash, i);
      const targets = [1, 2, 3, 4].map((i) => target('dep-1', `agent-${i}`, 0));
      expect(await store.createDeployment(deployment('dep-1'), [...targets, target('dep-1', 'agent-5', 1)], [])).toEqual({ ok: true });
      // agent-3 is under way, agent-4 rolls back; the others of phase 0 wait, agent-5 waits for phase 1.
      await store.writeRollout({
        targets: [
          { ...target('dep-1', 'agent-3', 0), state: 'notified', notifiedAt: at(1) },
          { ...target('dep-1', 'agent-4', 0), state: 'succeeded', rollbackState: 'queued' },
        ],
      });
      const ids = async (pendingLimit?: number): Promise<string[]> => (await store.listTargetViews('dep-1', { open: true, phase: 0, ...(pendingLimit === undefined ? {} : { pendingLimit }) })).map((t) => t.agentId);
      expect(await ids()).toEqual(['agent-1', 'agent-2', 'agent-3', 'agent-4']);
      expect(await ids(1)).toEqual(['agent-1', 'agent-3', 'agent-4']);
      expect(await ids(0)).toEqual(['agent-3', 'agent-4']);
      expect(await ids(10)).toEqual(await ids());
    });

    it('two stores creating a deployment of one artifact at once: exactly one is created, the other names it', async () => {
      const hash = await token(1);
      await enrolled(hash, 1);
      const other = await open();
      for (let round = 0; round < 3; round++) {
        const [a, b] = [`dep-${round}-a`, `dep-${round}-b`];
        const results = await Promise.all([
          store.createDeployment(deployment(a, { createdAt: at(round) }), [target(a, 'agent-1', 0)], [{ deploymentId: a, at: t0, type: 'created', message: 'a', details: {} }]),
          other.createDeployment(deployment(b, { createdAt: at(round) }), [target(b, 'agent-1', 0)], [{ deploymentId: b, at: t0, type: 'created', message: 'b', details: {} }]),
        ]);
        const winners = results.filter((r) => r.ok);
        expect(winners).toHaveLength(1);
        const winner = results[0].ok ? a : b;
        expect(results.find((r) => !r.ok)).toEqual({ ok: false, active: winner });
        expect((await store.listDeployments({ active: true, limit: 10 })).map((d) => d.id)).toEqual([winner]);
        // The loser left nothing: no deployment, no targets.
        expect(await store.getDeployment(winner === a ? b : a)).toBeUndefined();
        await store.writeRollout({ deployment: { ...deployment(winner, { createdAt: at(round) }), status: 'completed', completedAt: at(round) } });
      }
    });

    it('supersedes an active deployment in the same step that creates the new one', async () => {
      const agentId = await enrolled(await token(1), 1);
      expect(await store.createDeployment(deployment('dep-1'), [target('dep-1', agentId, 0)], [])).toEqual({ ok: true });
      const cancel = { deployment: { ...deployment('dep-1'), status: 'cancelled' as const, completedAt: at(1), updatedAt: at(1) }, events: [{ deploymentId: 'dep-1', at: at(1), type: 'cancelled', message: 'superseded', details: {} }], audit: [audit('superseded')] };
      expect(await store.createDeployment(deployment('dep-2', { createdAt: at(1) }), [target('dep-2', agentId, 0)], [], [cancel], [audit('created')])).toEqual({ ok: true });
      expect((await store.listDeployments({ active: true, limit: 10 })).map((d) => d.id)).toEqual(['dep-2']);
      expect((await store.listDeployments({ limit: 10 })).map((d) => d.id)).toEqual(['dep-2', 'dep-1']);
      expect((await store.listAuditOutbox(10)).map((r) => r.body)).toEqual([audit('superseded').body, audit('created').body]);
    });

    it('persists across reopening, and a schema newer than the code is refused with STORE_SCHEMA_TOO_NEW', async () => {
      const credential = newSecret();
      await store.enrollAgent(enrollInput(await token(1), machine(4), { credentialHash: hashSecret(credential) }));
      await store.setMeta('k', 'v');
      await store.close();
      store = await db.open();
      expect(await store.getMeta('k')).toBe('v');
      expect((await store.getAgentByCredentialHash(hashSecret(credential)))?.machineId).toBe(machine(4));
      await db.addFutureMigration(99);
      await expectRejection(db.open(), ManagerError, 'STORE_SCHEMA_TOO_NEW');
      // The refused open changed nothing.
      expect(await store.getMeta('k')).toBe('v');
    });

    it('refuses calls after close with STORE_CLOSED', async () => {
      await store.close();
      await expectRejection((async () => store.getAgent('x'))(), ManagerError, 'STORE_CLOSED');
      await expectRejection((async () => store.setMeta('k', 'v'))(), ManagerError, 'STORE_CLOSED');
      store = await db.open();
    });
  });
}
