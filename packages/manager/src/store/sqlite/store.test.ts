import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { hashSecret, newSecret } from '../../secrets.js';
import { SqliteStore } from './store.js';
import { enrollInput, machine, t0 } from '../../../test/store-conformance.js';

let dir: string;
let path: string;
let store: SqliteStore;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'drover-store-'));
  path = join(dir, 'manager.db');
  store = SqliteStore.open(path);
});
afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

async function token(seats: number, ttlMs = 3_600_000): Promise<string> {
  const secret = newSecret();
  await store.createEnrollmentToken({ tokenHash: hashSecret(secret), seats, createdAt: t0, expiresAt: new Date(t0.getTime() + ttlMs), createdBy: 'test' });
  return hashSecret(secret);
}


// What only the SQLite store has: one file, its pragmas, its bytes. The Store contract both stores
// keep is packages/manager/test/store-conformance.ts (run by store-sqlite.test.ts and store-postgres.test.ts).
describe('SqliteStore', () => {
  it('opens one file in WAL mode with foreign keys and records its migrations', () => {
    expect(store.appliedMigrations()).toEqual([1, 2, 3, 4, 5, 6]);
    const db = new Database(path, { readonly: true });
    try {
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
      const tables = db.prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all().map((r) => r.name);
      expect(tables).toEqual(expect.arrayContaining(['agents', 'commands', 'enrollment_tokens', 'meta', 'nonces', 'releases', 'schema_migrations', 'deployments', 'deployment_targets', 'deployment_events']));
    } finally {
      db.close();
    }
  });

  it('stores credentials only hashed in the file', async () => {
    const credential = newSecret();
    const hash = await token(1);
    await store.enrollAgent(enrollInput(hash, machine(4), { credentialHash: hashSecret(credential) }));
    await store.setMeta('k', 'v');
    await store.close();
    const bytes = await readFile(path);
    expect(bytes.includes(Buffer.from(credential))).toBe(false);
    expect(bytes.includes(Buffer.from(hashSecret(credential)))).toBe(true);
    store = SqliteStore.open(':memory:');
  });
});
