import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { expectError, expectRejection } from '../../../../../test/helpers/expect-error.js';
import { ManagerError } from '../../errors.js';
import { hashSecret, newSecret } from '../../secrets.js';
import { LIVENESS_FLUSH_MS } from './liveness-buffer.js';
import { SqliteStore } from './store.js';
import type { EnrollAgentInput } from '../records.js';

let dir: string;
let path: string;
let store: SqliteStore;
const t0 = new Date('2026-01-01T00:00:00Z');

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'drover-store-'));
  path = join(dir, 'manager.db');
  store = SqliteStore.open(path);
});
afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

function enrollInput(tokenHash: string, machine: string, overrides: Partial<EnrollAgentInput> = {}): EnrollAgentInput {
  return {
    tokenHash,
    now: t0,
    newAgentId: `agent-${machine.slice(-8)}`,
    machineId: machine,
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

async function token(seats: number, ttlMs = 3_600_000): Promise<string> {
  const secret = newSecret();
  await store.createEnrollmentToken({ tokenHash: hashSecret(secret), seats, createdAt: t0, expiresAt: new Date(t0.getTime() + ttlMs), createdBy: 'test' });
  return hashSecret(secret);
}

const machine = (n: number): string => n.toString(16).padStart(64, '0');

describe('SqliteStore', () => {
  it('opens one file in WAL mode with foreign keys and records its migrations', () => {
    expect(store.appliedMigrations()).toEqual([1, 2, 3, 4]);
    const db = new Database(path, { readonly: true });
    try {
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
      const tables = db.prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all().map((r) => r.name);
      expect(tables).toEqual(expect.arrayContaining(['agents', 'commands', 'enrollment_tokens', 'meta', 'nonces', 'releases', 'schema_migrations', 'deployments', 'deployment_targets', 'deployment_events']));
    } finally {
      db.close();
    }
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
    const again = await store.enrollAgent(enrollInput(hash, machine(7), { newAgentId: 'agent-other', credentialHash, agentVersion: '1.1.0' }));
    expect(again).toMatchObject({ ok: true, reenrolled: true, previousCredentialHash: first.agent.credentialHash });
    if (!again.ok) throw new Error('unreachable');
    expect(again.agent.id).toBe(first.agent.id);
    expect(again.agent.credentialHash).toBe(credentialHash);
    expect(await store.getAgentByCredentialHash(first.agent.credentialHash)).toBeUndefined();
    expect(await store.enrollAgent(enrollInput(hash, machine(7), { allowReenrollment: false }))).toMatchObject({ ok: false, reason: 'already_enrolled', agentId: first.agent.id });
  });

  it('delivers commands until acked, consumes a nonce once, and rolls a replayed check-in back', async () => {
    const hash = await token(1);
    const enrolled = await store.enrollAgent(enrollInput(hash, machine(9)));
    if (!enrolled.ok) throw new Error('enrollment failed');
    const agentId = enrolled.agent.id;
    await store.insertCommand(
      { id: 'cmd-1', agentId, type: 'update', deploymentId: 'd1', body: { id: 'cmd-1', type: 'update' }, createdAt: t0 },
      { id: 'nonce-0123456789abcdef', agentId, machineId: machine(9), commandId: 'cmd-1', deploymentId: 'd1', artifact: 'agent', fromVersion: '1.0.0', toVersion: '1.1.0', rollback: false, token: 'a.b', issuedAt: t0, expiresAt: t0 },
    );
    const base = { agentId, at: t0, agentVersion: '1.0.0', daemonVersion: '0.1.0', health: { status: 'healthy' }, update: undefined, inventory: undefined, commandLimit: 32 };
    const first = await store.recordCheckin({ ...base, acks: [], results: [] });
    expect(first).toMatchObject({ ok: true, commands: [{ id: 'cmd-1', deliveredCount: 1 }] });
    const second = await store.recordCheckin({ ...base, acks: [], results: [] });
    expect(second).toMatchObject({ ok: true, commands: [{ id: 'cmd-1', deliveredCount: 2 }] });
    const acked = await store.recordCheckin({ ...base, acks: ['cmd-1'], results: [] });
    expect(acked).toEqual({ ok: true, commands: [] });
    const result = { commandId: 'cmd-1', outcome: 'succeeded', detail: {}, consumeNonce: { nonceId: 'nonce-0123456789abcdef', reportedVersion: '1.1.0' } };
    expect(await store.recordCheckin({ ...base, agentVersion: '1.1.0', acks: [], results: [result] })).toEqual({ ok: true, commands: [] });
    expect(await store.getNonce('nonce-0123456789abcdef')).toMatchObject({ consumedOutcome: 'succeeded', reportedVersion: '1.1.0' });
    const replay = await store.recordCheckin({ ...base, agentVersion: '9.9.9', acks: [], results: [result] });
    expect(replay).toEqual({ ok: false, reason: 'nonce_replayed', nonceId: 'nonce-0123456789abcdef', commandId: 'cmd-1' });
    // Nothing of the refused check-in was written.
    expect((await store.getAgent(agentId))?.agentVersion).toBe('1.1.0');
  });

  it('stores credentials only hashed, persists across reopening, and refuses a newer schema', async () => {
    const credential = newSecret();
    const hash = await token(1);
    await store.enrollAgent(enrollInput(hash, machine(4), { credentialHash: hashSecret(credential) }));
    await store.setMeta('k', 'v');
    await store.close();
    const bytes = await readFile(path);
    expect(bytes.includes(Buffer.from(credential))).toBe(false);
    expect(bytes.includes(Buffer.from(hashSecret(credential)))).toBe(true);
    store = SqliteStore.open(path);
    expect(await store.getMeta('k')).toBe('v');
    expect((await store.getAgentByCredentialHash(hashSecret(credential)))?.machineId).toBe(machine(4));
    await store.close();
    const db = new Database(path);
    db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, ?, 0)').run('future');
    db.close();
    expectError(() => SqliteStore.open(path), ManagerError, 'STORE_SCHEMA_TOO_NEW');
    store = SqliteStore.open(':memory:');
  });

  it('buffers plain check-ins but never lets a reader, a durable write or a restart miss them', async () => {
    const hash = await token(2);
    const a = await store.enrollAgent(enrollInput(hash, machine(21)));
    const b = await store.enrollAgent(enrollInput(hash, machine(22)));
    if (!a.ok || !b.ok) throw new Error('enrollment failed');
    const base = { at: new Date(t0.getTime() + 1000), daemonVersion: '0.1.0', health: { status: 'healthy' }, update: undefined, inventory: undefined, acks: [], results: [], commandLimit: 32 };
    await store.recordCheckin({ ...base, agentId: a.agent.id, agentVersion: '1.0.1' });
    expect((await store.getAgent(a.agent.id))?.agentVersion).toBe('1.0.1');
    // The buffer's flush timer runs on vitest's clock: the test moves it past the flush instead of sleeping.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      await store.recordCheckin({ ...base, agentId: a.agent.id, agentVersion: '1.0.2' });
      // A later durable check-in (it acks) is not overwritten by the older buffered one.
      await store.recordCheckin({ ...base, agentId: a.agent.id, agentVersion: '1.0.5', acks: ['cmd-none'] });
      vi.advanceTimersByTime(LIVENESS_FLUSH_MS * 2);
    } finally {
      vi.useRealTimers();
    }
    expect((await store.getAgent(a.agent.id))?.agentVersion).toBe('1.0.5');
    // Check-ins of an agent with a pending command are written at once.
    await store.insertCommand({ id: 'cmd-b', agentId: b.agent.id, type: 'update', body: {}, createdAt: t0 });
    await store.recordCheckin({ ...base, agentId: b.agent.id, agentVersion: '2.0.0' });
    await store.recordCheckin({ ...base, agentId: a.agent.id, agentVersion: '1.0.6' });
    await store.close();
    store = SqliteStore.open(path);
    expect((await store.getAgent(a.agent.id))?.agentVersion).toBe('1.0.6');
    expect((await store.getAgent(b.agent.id))?.agentVersion).toBe('2.0.0');
    expect((await store.getAgent(a.agent.id))?.lastCheckinAt).toEqual(base.at);
  });

  it('refuses calls after close with STORE_CLOSED', async () => {
    await store.close();
    await expectRejection((async () => store.getAgent('x'))(), ManagerError, 'STORE_CLOSED');
    store = SqliteStore.open(':memory:');
  });
});
