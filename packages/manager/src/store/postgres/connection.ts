import pg from 'pg';
import type { Pool, PoolClient, PoolConfig } from 'pg';
import { ManagerError } from '../../errors.js';

// The connection side of the PostgreSQL store: the pool, what a driver error becomes, and which
// errors a whole transaction is retried on (docs/decisions/0028-postgres-store.md). The database
// password reaches pg's options and nothing else: every message names the database by its URL
// without the password (redactDatabaseUrl), and a driver error is never kept as a cause.

/** Where and how the PostgreSQL store connects. */
export interface PostgresConnectionOptions {
  /** `postgres://user[:password]@host[:port]/database[?sslmode=...]`. */
  url: string;
  /** The password, when not in the URL (a password file, DROVER_DATABASE_PASSWORD); PGPASSWORD and ~/.pgpass also work. */
  password?: string | undefined;
  /** Connections in the pool (default 10). */
  poolSize?: number | undefined;
  /** Milliseconds one statement may run (default 5000): statement_timeout on the server, and the client's query timeout. */
  statementTimeoutMs?: number | undefined;
  /** Milliseconds to wait for a connection (default 5000). */
  connectTimeoutMs?: number | undefined;
  /** The schema the store's tables live in (default: the connection's search_path, normally `public`). */
  schema?: string | undefined;
}

/** The URL without its password, for logs and messages: `postgres://drover@db:5432/drover`. */
export function redactDatabaseUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '';
    // Query parameters can carry a password too (`?password=`): keep their names only.
    for (const key of [...parsed.searchParams.keys()]) if (/pass|secret|key/i.test(key)) parsed.searchParams.set(key, 'REDACTED');
    return parsed.toString();
  } catch {
    return 'the configured PostgreSQL URL (malformed)';
  }
}

/** True for `postgres://` and `postgresql://` URLs. */
export function isPostgresUrl(value: string): boolean {
  return /^postgres(ql)?:\/\//i.test(value);
}

/** The password a URL carries, decoded; undefined without one. */
function urlPassword(url: string): string | undefined {
  try {
    const password = new URL(url).password;
    return password === '' ? undefined : decodeURIComponent(password);
  } catch {
    return undefined;
  }
}

// int8 (count(*), bigint columns, bigserial) and numeric as JS numbers: times are milliseconds
// since the epoch and ids count rows, all far below 2^53.
const parseNumber = (text: string): number => Number(text);
const INT8_OID = 20;
const NUMERIC_OID = 1700;
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    if (oid === INT8_OID || oid === NUMERIC_OID) return parseNumber;
    return (pg.types.getTypeParser as (oid: number, format?: 'text' | 'binary') => unknown)(oid, format);
  }) as NonNullable<PoolConfig['types']>['getTypeParser'],
};

/** A pool for `options`, its errors kept redacted; `onIdleError` hears of connections lost while idle. */
export function createPool(options: PostgresConnectionOptions, onIdleError: (error: ManagerError) => void): Pool {
  const statementTimeoutMs = Math.trunc(options.statementTimeoutMs ?? 5000);
  if (!isPostgresUrl(options.url)) throw new ManagerError('CONFIG_INVALID', `The database URL must start with postgres:// or postgresql:// (got ${redactDatabaseUrl(options.url)}).`);
  if (options.schema !== undefined && !/^[a-z_][a-z0-9_]{0,62}$/.test(options.schema)) throw new ManagerError('CONFIG_INVALID', 'The database schema must be a lowercase SQL identifier.');
  // pg lets the URL's fields override the options given beside it: a password kept apart goes into the URL pg sees.
  let connectionString = options.url;
  if (options.password !== undefined) {
    const withPassword = new URL(options.url);
    withPassword.password = encodeURIComponent(options.password);
    connectionString = withPassword.toString();
  }
  const config: PoolConfig = {
    connectionString,
    max: Math.max(1, Math.trunc(options.poolSize ?? 10)),
    connectionTimeoutMillis: Math.trunc(options.connectTimeoutMs ?? 5000),
    statement_timeout: statementTimeoutMs,
    // A little more than the server's own limit: the server's error (57014) is the one expected.
    query_timeout: statementTimeoutMs + 1000,
    // A transaction abandoned mid-way (a crashed handler) releases its locks.
    idle_in_transaction_session_timeout: statementTimeoutMs * 4,
    application_name: 'drover-manager',
    types,
    ...(options.schema === undefined ? {} : { options: `-c search_path=${options.schema}` }),
  };
  const pool = new pg.Pool(config);
  const describe = postgresErrors(options);
  // An idle connection the server dropped: pg emits it on the pool, where nobody listens otherwise.
  pool.on('error', (error) => {
    const described = describe(error);
    onIdleError(described instanceof ManagerError ? described : new ManagerError('STORE_UNAVAILABLE', described.message));
  });
  return pool;
}

// SQLSTATE classes and Node error codes that mean the database cannot be reached (or lost us).
const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE', '57P01', '57P02', '57P03', '53300']);
const RETRY_CODES = new Set(['40001', '40P01']);

function sqlState(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

// pg's DatabaseError, a socket error, or pg's own connection errors (plain Errors, by message).
function isDriverError(error: unknown): boolean {
  return error instanceof pg.DatabaseError || sqlState(error) !== undefined || isConnectionError(error) || /timeout|Query read timeout/i.test(messageOf(error));
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** True when the error says the connection was lost or never made. */
export function isConnectionError(error: unknown): boolean {
  const code = sqlState(error);
  if (code !== undefined && (CONNECTION_CODES.has(code) || code.startsWith('08'))) return true;
  return /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|Connection ended/i.test(messageOf(error));
}

/** True when re-running the whole transaction may succeed: serialization failure, deadlock, a lost connection. */
export function isRetryable(error: unknown): boolean {
  const code = sqlState(error);
  return (code !== undefined && RETRY_CODES.has(code)) || isConnectionError(error);
}

/**
 * What a driver error becomes: an outage is a ManagerError STORE_UNAVAILABLE (503) naming the
 * database without its password; any other refusal (a constraint, a bug) a plain Error with the
 * SQLSTATE and the redacted message (500 INTERNAL_ERROR, details only in the log). A ManagerError
 * or one of the store's own errors passes through.
 */
export function postgresErrors(options: Pick<PostgresConnectionOptions, 'url' | 'password'>): (error: unknown, connecting?: boolean) => Error {
  const where = redactDatabaseUrl(options.url);
  const secrets = [urlPassword(options.url), options.password, options.password === undefined ? undefined : encodeURIComponent(options.password), options.url].filter((s): s is string => s !== undefined && s !== '');
  const clean = (text: string): string => secrets.reduce((out, secret) => out.split(secret).join('<redacted>'), text);
  return (error: unknown, connecting = false): Error => {
    if (error instanceof ManagerError || (!connecting && !isDriverError(error))) return error instanceof Error ? error : new Error(String(error));
    const code = sqlState(error);
    const detail = clean(messageOf(error));
    if (code === '28P01' || code === '28000' || /SASL|password/i.test(detail)) {
      return new ManagerError('STORE_UNAVAILABLE', `PostgreSQL at ${where} refused the manager's credentials (${code}: ${detail}). Check the database user and password (DROVER_DATABASE_URL, the password file, PGPASSWORD).`);
    }
    if (code === '3D000') return new ManagerError('STORE_UNAVAILABLE', `PostgreSQL at ${where}: ${detail} (${code}). Create the database, or fix the URL.`);
    if (code === '57014') return new ManagerError('STORE_UNAVAILABLE', `PostgreSQL at ${where} did not answer within the statement timeout (${code}: ${detail}).`);
    if (isConnectionError(error) || /timeout/i.test(detail)) {
      return new ManagerError('STORE_UNAVAILABLE', `PostgreSQL at ${where} cannot be reached (${code === undefined ? '' : `${code}: `}${detail}). Check that it runs and that the manager can connect to it.`);
    }
    if (connecting) return new ManagerError('STORE_UNAVAILABLE', `PostgreSQL at ${where}: connecting failed (${code === undefined ? '' : `${code}: `}${detail}).`);
    return new Error(`PostgreSQL at ${where} refused a statement (${code ?? 'no SQLSTATE'}: ${detail}).`);
  };
}

/** What statements run on: the pool (one statement, autocommit) or a client inside a transaction. */
export type Queryable = Pool | PoolClient;


// PostgreSQL binds at most 65,535 parameters in one statement.
const MAX_PARAMETERS = 60_000;

/**
 * Inserts `rows` (objects with the same columns, in the same order) in as few statements as
 * PostgreSQL's parameter limit allows, in their order: one round trip per statement instead of one
 * per row, which is what a transaction writing a deployment's thousands of targets waits on.
 * With `upsert`, a row whose key exists updates the `update` columns; rows with the same key keep
 * the last one, as one upsert per row would (one statement cannot update a row twice).
 */
export async function insertRows(
  db: Queryable,
  table: string,
  rows: readonly Record<string, unknown>[],
  upsert?: { key: readonly string[]; update: readonly string[] },
): Promise<void> {
  const first = rows[0];
  if (first === undefined) return;
  const columns = Object.keys(first);
  let unique = rows;
  let onConflict = '';
  if (upsert !== undefined) {
    const byKey = new Map<string, Record<string, unknown>>();
    for (const row of rows) byKey.set(JSON.stringify(upsert.key.map((column) => row[column])), row);
    unique = [...byKey.values()];
    onConflict = ` ON CONFLICT (${upsert.key.join(', ')}) DO UPDATE SET ${upsert.update.map((column) => `${column} = excluded.${column}`).join(', ')}`;
  }
  const perStatement = Math.max(1, Math.floor(MAX_PARAMETERS / columns.length));
  for (let start = 0; start < unique.length; start += perStatement) {
    const values: unknown[] = [];
    const tuples = unique.slice(start, start + perStatement).map((row) => `(${columns.map((column) => `$${values.push(row[column])}`).join(', ')})`);
    await db.query(`INSERT INTO ${table} (${columns.join(', ')}) VALUES ${tuples.join(', ')}${onConflict}`, values);
  }
}
