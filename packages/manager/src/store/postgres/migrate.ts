import { ManagerError } from '../../errors.js';
import type { Migration } from '../sqlite/migrations.js';
import type { Queryable } from './connection.js';
import { postgresMigrations } from './migrations.js';

// Brings a database to the schema of migrations.ts, in one transaction under an advisory lock:
// two managers starting together on one database serialize here, and the second finds nothing
// left to do. DDL is transactional in PostgreSQL, so a failed migration leaves nothing behind. A
// database newer than this manager is refused (STORE_SCHEMA_TOO_NEW), never guessed at.

/** The advisory lock key of drover's migrations (any bigint; this one is "drover" in ASCII, 0x64726f766572). */
export const MIGRATION_LOCK_KEY = '110442659079538';

/** Applies the migrations not yet applied, inside the caller's transaction (on `db`); returns those it ran, oldest first. */
export async function migrateInTransaction(db: Queryable, migrations: readonly Migration[] = postgresMigrations, now: () => number = Date.now): Promise<Migration[]> {
  await db.query(`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`);
  await db.query('CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at bigint NOT NULL)');
  const applied = new Set((await db.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map((row) => row.version));
  const known = Math.max(0, ...migrations.map((m) => m.version));
  const newest = Math.max(0, ...applied);
  if (newest > known) {
    throw new ManagerError('STORE_SCHEMA_TOO_NEW', `The database schema is at version ${newest}, newer than this manager knows (${known}). Run the newer manager, or restore a backup made by this version.`);
  }
  const ran: Migration[] = [];
  for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
    if (applied.has(migration.version)) continue;
    await db.query(migration.sql);
    await db.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [migration.version, migration.name, now()]);
    ran.push(migration);
  }
  return ran;
}
