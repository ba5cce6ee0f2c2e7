// The Store contract (store-conformance.ts) on the SQLite store: one file per test, in its own
// temporary directory; "another store on the same database" is a second connection to the file.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SqliteStore } from '../src/store/sqlite/store.js';
import { describeStoreConformance } from './store-conformance.js';

describeStoreConformance('SQLite', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'drover-store-'));
  const path = join(dir, 'manager.db');
  return {
    store: SqliteStore.open(path),
    open: () => Promise.resolve().then(() => SqliteStore.open(path)),
    addFutureMigration: async (version) => {
      const db = new Database(path);
      try {
        db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, 0)').run(version, 'future');
      } finally {
        db.close();
      }
      await Promise.resolve();
    },
    dispose: () => rm(dir, { recursive: true, force: true }),
  };
});
