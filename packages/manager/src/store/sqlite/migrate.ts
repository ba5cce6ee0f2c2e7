import type Database from 'better-sqlite3';
import { ManagerError } from '../../errors.js';
import { sqliteMigrations } from './migrations.js';
import type { Migration } from './migrations.js';

// Brings a database to the schema of migrations.ts: each missing migration in its own transaction,
// recorded in schema_migrations. A database newer than this manager is refused, never guessed at.

/** Applies the migrations not yet applied, each in its own transaction. */
export function migrate(db: Database.Database, migrations: readonly Migration[] = sqliteMigrations): number[] {
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT');
  const applied = new Set(db.prepare<[], { version: number }>('SELECT version FROM schema_migrations').all().map((row) => row.version));
  const known = Math.max(0, ...migrations.map((m) => m.version));
  const newest = Math.max(0, ...applied);
  // A database written by a newer manager may hold columns this one would mishandle: refuse.
  if (newest > known) {
    throw new ManagerError('STORE_SCHEMA_TOO_NEW', `The database schema is at version ${newest}, newer than this manager knows (${known}). Run the newer manager, or restore a backup made by this version.`);
  }
  const ran: number[] = [];
  const record = db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)');
  for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
    if (applied.has(migration.version)) continue;
    db.transaction(() => {
      db.exec(migration.sql);
      record.run(migration.version, migration.name, Date.now());
    })();
    ran.push(migration.version);
  }
  return ran;
}
