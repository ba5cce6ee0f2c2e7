import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { writeFileAtomic } from '@drover/protocol/internal';
import { ManagerError } from '../errors.js';
import { createPool, postgresErrors, redactDatabaseUrl } from '../store/postgres/connection.js';
import type { Queryable } from '../store/postgres/connection.js';
import { migrateInTransaction } from '../store/postgres/migrate.js';
import { postgresMigrations } from '../store/postgres/migrations.js';
import { migrate as migrateSqlite } from '../store/sqlite/migrate.js';
import { managerLayout } from '../config.js';
import { readManagerConfig, resolvePath } from './config-file.js';
import type { ManagerConfig } from './config-file.js';
import { splitDatabasePassword } from './database.js';
import { runningManagerPid } from './pid-file.js';

// `drover manager migrate-store`: moves a manager directory's state from its SQLite file to an
// empty PostgreSQL database (issue 12, decision 0028). Both stores share one schema (the same
// tables, columns and meanings, store/rows.ts), so every row is copied as it is, table by table in
// the order their foreign keys need, in one PostgreSQL transaction: the database holds all of it
// or nothing. The SQLite file is held under a write lock for the copy, so nothing changes it
// meanwhile, and is left in place. The audit chain is in the directory's log file; its head (kept
// in the store's meta table) moves with the rest, and the manager's first start on PostgreSQL checks
// the file against it and copies it into the database's chain (audit/open.ts, decision 0038).
// Only then does manager.json name the database.

/** Tables in foreign-key order; schema_migrations is the target's own. */
const TABLES = ['meta', 'enrollment_tokens', 'agents', 'commands', 'nonces', 'releases', 'deployments', 'deployment_targets', 'deployment_events', 'audit_outbox'] as const;
/** bigserial columns, whose sequences continue after the copied rows. */
const SERIALS: readonly (readonly [string, string])[] = [
  ['commands', 'seq'],
  ['deployment_events', 'seq'],
  ['audit_outbox', 'id'],
];
const BATCH_ROWS = 500;

/** Where `migrateStoreToPostgres` copies to. */
export interface MigrateStoreTarget {
  /** `postgres://user[:password]@host:port/database`: must be empty of drover's tables' rows. */
  url: string;
  /** The password, when not in the URL. */
  password?: string | undefined;
}

/** What `drover manager migrate-store` did. */
export interface MigrateStoreReport {
  /** The SQLite file copied from (left in place). */
  from: string;
  /** The database copied to, without its password. */
  to: string;
  /** Rows copied per table; each equals the count in both databases after the copy. */
  rows: Record<string, number>;
  /** The schema version of both. */
  schemaVersion: number;
  /** manager.json's `database` now: the URL without its password, and the file holding the password if one was given. */
  database: { url: string; passwordFile?: string };
}

type Row = Record<string, unknown>;

/** A value of an SQLite row as the PostgreSQL column of `type` takes it. */
function toColumn(value: unknown, type: string): unknown {
  if (value === null || value === undefined) return null;
  if (type === 'boolean') return value === 1 || value === true;
  return value;
}

async function insertBatch(db: Queryable, table: string, columns: readonly string[], types: Map<string, string>, rows: readonly Row[]): Promise<void> {
  const params: unknown[] = [];
  const tuples = rows.map((row) => `(${columns.map((column) => `$${params.push(toColumn(row[column], types.get(column) ?? 'text'))}`).join(', ')})`);
  await db.query(`INSERT INTO ${table} (${columns.join(', ')}) VALUES ${tuples.join(', ')}`, params);
}

/**
 * Copies the manager in `dir` from its SQLite file to the empty PostgreSQL database `target`, then
 * points manager.json at it (the password, if any, in secrets/database.password, 0600). Stop the
 * manager first. Refuses a directory already on PostgreSQL (CONFIG_INVALID) and a database that
 * holds rows of drover's tables (STORE_NOT_EMPTY); either way nothing is changed. `onTable`
 * hears of each table as it is copied.
 */
export async function migrateStoreToPostgres(dir: string, target: MigrateStoreTarget, onTable?: (table: string, rows: number) => void): Promise<MigrateStoreReport> {
  const config = await readManagerConfig(dir);
  const running = await runningManagerPid(dir);
  if (running !== undefined) {
    throw new ManagerError('MANAGER_RUNNING', `A manager runs from ${dir} (pid ${String(running)}): stop it first, or what it writes after the copy is lost. If none runs, remove ${dir}/manager.pid.`);
  }
  if (config.database !== undefined) {
    throw new ManagerError('CONFIG_INVALID', `${dir} already keeps its state in PostgreSQL (${redactDatabaseUrl(config.database.url)}): there is no SQLite store to move.`);
  }
  const from = resolvePath(dir, config.paths.database);
  if (!existsSync(from)) throw new ManagerError('CONFIG_INVALID', `${from} does not exist: ${dir} has no SQLite store to move. Is it the directory of \`drover manager init\`?`);
  const split = splitDatabasePassword(target.url);
  const password = target.password ?? split.password;
  const to = redactDatabaseUrl(split.url);

  const sqlite = new Database(from, { fileMustExist: true, timeout: 5000 });
  const pool = createPool({ url: split.url, password, poolSize: 1, statementTimeoutMs: 60_000 }, () => undefined);
  const refine = postgresErrors({ url: split.url, password });
  try {
    // The source at this code's schema (as `drover manager migrate` would), then held still.
    migrateSqlite(sqlite);
    const schemaVersion = sqlite.prepare<[], { v: number | null }>('SELECT max(version) AS v FROM schema_migrations').get()?.v ?? 0;
    sqlite.exec('BEGIN IMMEDIATE');
    let db;
    try {
      db = await pool.connect();
    } catch (error) {
      throw refine(error, true);
    }
    const rows: Record<string, number> = {};
    try {
      await db.query('BEGIN');
      await migrateInTransaction(db, postgresMigrations);
      for (const table of TABLES) {
        const count = (await db.query<{ n: number }>(`SELECT count(*) AS n FROM ${table}`)).rows[0]?.n ?? 0;
        if (count > 0) {
          throw new ManagerError('STORE_NOT_EMPTY', `${to} already holds ${String(count)} row(s) in ${table}: migrate-store copies into an empty database only. Give it a new database (CREATE DATABASE), or drop this one's drover tables if it is a failed earlier attempt.`);
        }
      }
      for (const table of TABLES) {
        const types = new Map((await db.query<{ column_name: string; data_type: string }>('SELECT column_name, data_type FROM information_schema.columns WHERE table_name = $1 AND table_schema = current_schema()', [table])).rows.map((r) => [r.column_name, r.data_type]));
        const columns = sqlite.prepare<[], { name: string }>(`SELECT name FROM pragma_table_info('${table}')`).all().map((c) => c.name);
        const missing = columns.filter((c) => !types.has(c));
        if (missing.length > 0) throw new ManagerError('CONFIG_INVALID', `The PostgreSQL schema of ${table} lacks ${missing.join(', ')}: both databases must be at schema version ${String(schemaVersion)}.`);
        let batch: Row[] = [];
        let copied = 0;
        for (const row of sqlite.prepare<[], Row>(`SELECT * FROM ${table}`).iterate()) {
          batch.push(row);
          if (batch.length === BATCH_ROWS) {
            await insertBatch(db, table, columns, types, batch);
            copied += batch.length;
            batch = [];
          }
        }
        if (batch.length > 0) await insertBatch(db, table, columns, types, batch);
        copied += batch.length;
        const there = (await db.query<{ n: number }>(`SELECT count(*) AS n FROM ${table}`)).rows[0]?.n ?? 0;
        const here = sqlite.prepare<[], { n: number }>(`SELECT count(*) AS n FROM ${table}`).get()?.n ?? 0;
        if (there !== here || copied !== here) throw new ManagerError('INTERNAL_ERROR', `Copied ${String(copied)} rows of ${table}, but SQLite holds ${String(here)} and PostgreSQL ${String(there)}: nothing was committed.`);
        rows[table] = copied;
        onTable?.(table, copied);
      }
      for (const [table, column] of SERIALS) {
        await db.query(`SELECT setval(pg_get_serial_sequence('${table}', '${column}'), COALESCE((SELECT max(${column}) FROM ${table}), 0) + 1, false)`);
      }
      await db.query('COMMIT');
    } catch (error) {
      await db.query('ROLLBACK').catch(() => undefined);
      throw error instanceof ManagerError ? error : refine(error);
    } finally {
      db.release();
    }
    // Committed: from now on the directory's manager opens PostgreSQL.
    const database: NonNullable<ManagerConfig['database']> = { url: split.url, ...(password === undefined ? {} : { passwordFile: managerLayout.databasePassword }) };
    try {
      if (password !== undefined) {
        const passwordPath = resolvePath(dir, managerLayout.databasePassword);
        await mkdir(dirname(passwordPath), { recursive: true, mode: 0o700 });
        await writeFileAtomic(passwordPath, `${password}\n`, { mode: 0o600 });
      }
      await writeFileAtomic(resolvePath(dir, managerLayout.config), `${JSON.stringify({ ...config, database }, null, 2)}\n`, { mode: 0o600 });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'error';
      throw new ManagerError(
        'CONFIG_INVALID',
        `Copied everything to ${to}, but could not update ${dir}/manager.json (${code}): it still names the SQLite file. Set its "database" to {"url": "${split.url}"${password === undefined ? '' : `, "passwordFile": "${managerLayout.databasePassword}"`}} by hand${password === undefined ? '' : ' and put the password in that file (0600)'}; do not run migrate-store again (the database is no longer empty).`,
      );
    }
    return { from, to, rows, schemaVersion, database };
  } finally {
    if (sqlite.inTransaction) sqlite.exec('ROLLBACK');
    sqlite.close();
    await pool.end();
  }
}
