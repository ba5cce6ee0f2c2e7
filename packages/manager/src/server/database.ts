import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { ManagerError } from '../errors.js';
import { readSecretFile } from '../keys.js';
import { createPool, isPostgresUrl, postgresErrors, redactDatabaseUrl } from '../store/postgres/connection.js';
import { PostgresStore } from '../store/postgres/store.js';
import { migrate as migrateSqlite } from '../store/sqlite/migrate.js';
import { sqliteMigrations } from '../store/sqlite/migrations.js';
import { readManagerConfig, resolvePath } from './config-file.js';
import type { ManagerConfig } from './config-file.js';

// Which database a manager keeps its state in (docs/decisions/0028-postgres-store.md): SQLite at
// paths.database (the default), or PostgreSQL when manager.json has `database.url` or the
// environment DROVER_DATABASE_URL (which wins). manager.json never holds the password: it names a
// 0600 file (`database.passwordFile`, written by `drover manager init --database URL` from the
// URL's password); DROVER_DATABASE_URL may carry one, and PGPASSWORD / ~/.pgpass work too.

/** The manager's state in PostgreSQL ({@link ManagerOptions}.database). */
export interface DatabaseConfig {
  /** `postgres://user@host:port/database` (`postgresql://` too); it may carry the password. */
  url: string;
  /** The password, when it is not in the URL. */
  password?: string | undefined;
  /** Connections in the pool (default 10). */
  poolSize?: number | undefined;
  /** Milliseconds one statement may run (default 5000). */
  statementTimeoutMs?: number | undefined;
}

/** manager.json's `database` plus DROVER_DATABASE_URL, resolved; undefined: SQLite. */
export async function resolveDatabaseConfig(dir: string, config: ManagerConfig, env: Record<string, string | undefined>): Promise<DatabaseConfig | undefined> {
  const fromEnv = env['DROVER_DATABASE_URL']?.trim();
  const file = config.database;
  if ((fromEnv === undefined || fromEnv === '') && file === undefined) return undefined;
  const url = fromEnv === undefined || fromEnv === '' ? (file?.url ?? '') : fromEnv;
  if (!isPostgresUrl(url)) {
    throw new ManagerError('CONFIG_INVALID', `${fromEnv === undefined ? "manager.json's database.url" : 'DROVER_DATABASE_URL'} must be a postgres:// or postgresql:// URL (got ${redactDatabaseUrl(url)}); unset it to keep the state in SQLite.`);
  }
  if (file !== undefined && new URL(file.url).password !== '') {
    throw new ManagerError('CONFIG_INVALID', "manager.json's database.url carries a password: manager.json never holds secrets. Put the password in a 0600 file named by database.passwordFile (or in DROVER_DATABASE_URL) and remove it from the URL.");
  }
  const passwordFile = file?.passwordFile;
  const password = passwordFile === undefined || new URL(url).password !== '' ? undefined : await readSecretFile(resolvePath(dir, passwordFile), 'database password');
  return { url, password, poolSize: file?.poolSize, statementTimeoutMs: file?.statementTimeoutMs };
}

/** A URL without its password, and that password (decoded), for `drover manager init --database`. */
export function splitDatabasePassword(url: string): { url: string; password: string | undefined } {
  if (!isPostgresUrl(url)) throw new ManagerError('CONFIG_INVALID', `--database must be a postgres:// or postgresql:// URL (got ${redactDatabaseUrl(url)}).`);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ManagerError('CONFIG_INVALID', 'The database URL is malformed.');
  }
  const password = parsed.password === '' ? undefined : decodeURIComponent(parsed.password);
  parsed.password = '';
  return { url: parsed.toString(), password };
}

/** Opens the PostgreSQL store of a database config (migrated). */
export function openPostgresStore(config: DatabaseConfig, onConnectionError?: (error: ManagerError) => void): Promise<PostgresStore> {
  return PostgresStore.open({ url: config.url, password: config.password, poolSize: config.poolSize, statementTimeoutMs: config.statementTimeoutMs, onConnectionError });
}

/** What `drover manager migrate` did. */
export interface MigrationReport {
  /** Which store the directory uses. */
  store: 'sqlite' | 'postgres';
  /** The database file, or the URL without its password. */
  database: string;
  /** The migrations it applied now, oldest first (empty: the schema was current). */
  applied: { version: number; name: string }[];
  /** The schema version the database is at now. */
  version: number;
}

/**
 * Brings the database of a manager directory to this manager's schema, as `drover manager migrate`
 * does (a manager also does it when it starts); refuses a newer schema (STORE_SCHEMA_TOO_NEW).
 */
export async function migrateManagerDatabase(dir: string, env: Record<string, string | undefined> = process.env): Promise<MigrationReport> {
  const config = await readManagerConfig(dir);
  const database = await resolveDatabaseConfig(dir, config, env);
  if (database !== undefined) {
    const applied = await PostgresStore.migrateOnly({ url: database.url, password: database.password, poolSize: 1, statementTimeoutMs: database.statementTimeoutMs });
    return { store: 'postgres', database: redactDatabaseUrl(database.url), applied: applied.ran.map(({ version, name }) => ({ version, name })), version: applied.version };
  }
  const path = resolvePath(dir, config.paths.database);
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const db = new Database(path);
  try {
    const ran = migrateSqlite(db);
    const version = db.prepare<[], { v: number | null }>('SELECT max(version) AS v FROM schema_migrations').get()?.v ?? 0;
    return { store: 'sqlite', database: path, applied: sqliteMigrations.filter((m) => ran.includes(m.version)).map(({ version, name }) => ({ version, name })), version };
  } finally {
    db.close();
  }
}

/** Where a manager directory's audit chain is, for `drover audit verify --dir`. */
export type ManagerAuditChain =
  | { kind: 'file'; path: string; signersPath: string }
  | {
      kind: 'database';
      /** The database without its password. */
      database: string;
      signersPath: string;
      /** The chain's lines as they are now (up to the last seq when it starts), oldest first. */
      lines: () => AsyncGenerator<Uint8Array>;
    };

const CHAIN_PAGE = 1000;

/**
 * The audit chain of a manager directory: its log file, or, for a manager on PostgreSQL, the chain
 * the replicas keep in the database (decision 0038), read without changing anything.
 */
export async function managerAuditChain(dir: string, env: Record<string, string | undefined> = process.env): Promise<ManagerAuditChain> {
  const config = await readManagerConfig(dir);
  const signersPath = resolvePath(dir, config.paths.auditSigners);
  const database = await resolveDatabaseConfig(dir, config, env);
  if (database === undefined) return { kind: 'file', path: resolvePath(dir, config.paths.auditLog), signersPath };
  return {
    kind: 'database',
    database: redactDatabaseUrl(database.url),
    signersPath,
    lines: async function* () {
      const errors = postgresErrors(database);
      const pool = createPool({ url: database.url, password: database.password, poolSize: 1, statementTimeoutMs: database.statementTimeoutMs ?? 30_000 }, () => undefined);
      try {
        const query = async <T extends object>(text: string, values: unknown[]): Promise<T[]> => {
          try {
            return (await pool.query<T>(text, values)).rows;
          } catch (error) {
            throw errors(error);
          }
        };
        const [last] = await query<{ seq: string | null }>('SELECT max(seq) AS seq FROM audit_chain', []);
        const end = Number(last?.seq ?? 0);
        for (let after = 0; after < end; ) {
          const page = await query<{ seq: string; line: string }>('SELECT seq, line FROM audit_chain WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3', [after, end, CHAIN_PAGE]);
          if (page.length === 0) break;
          for (const row of page) yield Buffer.from(row.line, 'utf8');
          after = Number(page[page.length - 1]?.seq);
        }
      } finally {
        await pool.end();
      }
    },
  };
}
