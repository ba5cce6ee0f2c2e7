import type { Pool, PoolClient } from 'pg';
import { ManagerError } from '../../errors.js';
import { agentFilterWhere } from '../agent-filter.js';
import type { FilterDialect } from '../agent-filter.js';
import type * as rollout from '../../rollouts/records.js';
import type * as records from '../records.js';
import { LivenessBuffer, livenessParams } from '../sqlite/liveness-buffer.js';
import type { LivenessParams } from '../sqlite/liveness-buffer.js';
import type { Migration } from '../sqlite/migrations.js';
import { agentRecord, commandRecord, enrollRefusal, enrollRefused, fleetDetails, nonceRecord, releaseRecord, tokenRecord } from '../rows.js';
import type { AgentRow, CommandRow, NonceRow, ReleaseRow, TokenRow } from '../rows.js';
import { DeploymentActive, NonceReplayed, replayedCheckin } from '../refusals.js';
import type { Store } from '../store.js';
import { createPool, insertRows, isConnectionError, isRetryable, postgresErrors, redactDatabaseUrl } from './connection.js';
import type { PostgresConnectionOptions, Queryable } from './connection.js';
import { migrateInTransaction } from './migrate.js';
import * as rollouts from './rollouts.js';

// The PostgreSQL store (docs/decisions/0028-postgres-store.md): the same semantics as the SQLite
// store (sqlite/store.ts), on a pg pool.
//
// - Every write is one transaction on one pooled client, READ COMMITTED, with explicit locks
//   where a decision reads then writes: the enrollment token row FOR UPDATE and a conditional seat
//   increment; nonce consumption as a compare-and-set; an advisory lock per artifact around "no
//   other active deployment, then create". A whole transaction is retried on 40001, 40P01 and a
//   connection lost before COMMIT (bounded, with jitter); never after COMMIT was sent.
// - The plain check-in's liveness write is buffered (sqlite/liveness-buffer.ts) and written as one
//   UPDATE per batch; every other call waits for the buffer to be written first.
// - Driver errors become STORE_UNAVAILABLE (an outage) or a redacted Error (connection.ts): the
//   password is never in a message.
// - Rows are the SQLite store's rows (bigint milliseconds read back as numbers, JSON as text) and
//   map to records through the same functions (sqlite/rows.ts, sqlite/rollout-rows.ts).

/** How the PostgreSQL store connects and retries. */
export interface PostgresStoreOptions extends PostgresConnectionOptions {
  /** Attempts of one transaction in all, on serialization failures, deadlocks and lost connections (default 3). */
  maxAttempts?: number | undefined;
  /** Hears of connections lost while idle in the pool (already redacted); default: ignored (the next call reconnects). */
  onConnectionError?: ((error: ManagerError) => void) | undefined;
}


class RetryAfterRollback extends Error {}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

const one = async <T extends object>(db: Queryable, text: string, values: unknown[] = []): Promise<T | undefined> => (await db.query<T>(text, values)).rows[0];
const all = async <T extends object>(db: Queryable, text: string, values: unknown[] = []): Promise<T[]> => (await db.query<T>(text, values)).rows;

type PgNonceRow = Omit<NonceRow, 'rollback'> & { rollback: boolean };
const pgNonceRecord = (row: PgNonceRow): records.NonceRecord => nonceRecord({ ...row, rollback: row.rollback ? 1 : 0 });

// The advisory lock of "one active deployment per artifact" (two replicas creating at once serialize on it).
const DEPLOYMENT_LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtextextended('drover.deployment:' || $1, 0))";

// Leases (decision 0038). A lease is a session-level advisory lock on a connection of its own,
// so a manager that dies lets go at once (its session ends with its socket), and one that stalls
// loses it: the session is ended by the server after LEASE_IDLE_MS without a statement, and a
// heartbeat keeps a live holder's session busy. Each take increments the lease row's token; a
// write fenced with a token reads the row FOR SHARE, so it is refused once a later holder has
// taken the lease, and a later holder's take waits for a write already under way to commit.
const LEASE_IDLE_MS = 10_000;
const LEASE_HEARTBEAT_MS = 2_000;
const LEASE_WAIT_MS = 15_000;
// The command channel's notices (decision 0041).
const COMMAND_CHANNEL = 'drover_commands';
const COMMAND_NOTICE_BYTES = 7000;
const LISTEN_RETRY_MS = 1000;
const AUDIT_CHAIN_TIMEOUT_MS = 60_000;
const AUDIT_CHAIN_LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtextextended('drover.audit-chain', 0))";
const LEASE_KEY_SQL = "hashtextextended('drover.lease:' || $1, 0)";

/**
 * The NOTIFY payloads telling of commands for `agentIds`: JSON arrays of distinct ids, each under
 * COMMAND_NOTICE_BYTES (PostgreSQL refuses a payload of 8000 bytes or more, and the transaction
 * with it).
 */
export function commandNotices(agentIds: Iterable<string>): string[] {
  const payloads: string[] = [];
  let chunk: string[] = [];
  let bytes = 2;
  for (const agentId of new Set(agentIds)) {
    const size = Buffer.byteLength(JSON.stringify(agentId)) + 1;
    if (chunk.length > 0 && bytes + size > COMMAND_NOTICE_BYTES) {
      payloads.push(JSON.stringify(chunk));
      chunk = [];
      bytes = 2;
    }
    chunk.push(agentId);
    bytes += size;
  }
  if (chunk.length > 0) payloads.push(JSON.stringify(chunk));
  return payloads;
}

async function checkFence(db: Queryable, fence: records.LeaseFence | undefined): Promise<void> {
  if (fence === undefined) return;
  const row = await one<{ token: string }>(db, 'SELECT token FROM leases WHERE name = $1 FOR SHARE', [fence.name]);
  if (row === undefined || Number(row.token) !== fence.token) {
    throw new ManagerError('LEASE_LOST', `This manager no longer holds the ${fence.name} lease (another replica took it over): nothing was written. The replica holding it carries on.`);
  }
}

// The fleet listing's filter (agent-filter.ts) in PostgreSQL: numbered placeholders, the health report read as jsonb.
const postgresFilter: FilterDialect = { placeholder: (n) => `$${n}`, healthStatus: "(health_json::jsonb ->> 'status')" };

/**
 * A {@link Store} on PostgreSQL: several managers may share one database.
 *
 * @example
 * ```ts
 * const store = await PostgresStore.open({ url: 'postgres://drover@db/drover', password })
 * ```
 */

export class PostgresStore implements Store {
  readonly kind = 'postgres';
  /** The database, without its password (for logs). */
  readonly where: string;
  readonly #pool: Pool;
  readonly #error: (error: unknown, connecting?: boolean) => Error;
  readonly #maxAttempts: number;
  readonly #liveness: LivenessBuffer<LivenessParams>;
  #livenessWrite: Promise<void> = Promise.resolve();
  #closed = false;
  readonly #leases = new Set<() => Promise<void>>();
  readonly #onConnectionError: (error: ManagerError) => void;
  // Agents given a command in each open transaction: NOTIFY'd with it, delivered at its commit.
  readonly #notifyFor = new WeakMap<PoolClient, string[]>();
  readonly #commandWatchers = new Set<(agentIds: readonly string[] | 'all') => void>();
  #listener: PoolClient | undefined;
  #listening = false;
  #listenRetry: NodeJS.Timeout | undefined;

  private constructor(options: PostgresStoreOptions) {
    this.where = redactDatabaseUrl(options.url);
    this.#error = postgresErrors(options);
    this.#maxAttempts = Math.max(1, Math.trunc(options.maxAttempts ?? 3));
    this.#onConnectionError = options.onConnectionError ?? (() => undefined);
    this.#pool = createPool(options, this.#onConnectionError);
    this.#liveness = new LivenessBuffer((batch) => {
      // Chained: a later batch never overtakes an earlier one. A failed batch is lost (liveness
      // only; the next check-ins write it again), as in the SQLite store.
      this.#livenessWrite = this.#livenessWrite.then(() => this.#writeLiveness(batch)).catch(() => undefined);
    });
  }

  /** Connects, migrates (under an advisory lock) and returns the store; throws STORE_UNAVAILABLE or STORE_SCHEMA_TOO_NEW. */
  static async open(options: PostgresStoreOptions): Promise<PostgresStore> {
    const store = new PostgresStore(options);
    try {
      await store.migrate();
    } catch (error) {
      await store.close();
      throw error;
    }
    return store;
  }

  /** Connects, migrates and closes: what `drover manager migrate` runs. Returns the migrations applied and the schema version now. */
  static async migrateOnly(options: PostgresStoreOptions): Promise<{ ran: Migration[]; version: number }> {
    const store = new PostgresStore(options);
    try {
      const ran = await store.migrate();
      return { ran, version: Math.max(0, ...(await store.appliedMigrations())) };
    } finally {
      await store.close();
    }
  }

  /** Applies the migrations not yet applied (one transaction, advisory lock); returns those it ran. */
  migrate(): Promise<Migration[]> {
    return this.#tx((db) => migrateInTransaction(db), false);
  }

  /** The migrations applied to this database, oldest first. */
  async appliedMigrations(): Promise<number[]> {
    return (await this.#read((db) => all<{ version: number }>(db, 'SELECT version FROM schema_migrations ORDER BY version'))).map((row) => row.version);
  }

  #notClosed(): void {
    if (this.#closed) throw new ManagerError('STORE_CLOSED', 'The store is closed: the manager is shutting down. Retry against the restarted manager.');
  }

  // Every call but the check-in hot path: buffered liveness is written first.
  async #open(): Promise<void> {
    this.#notClosed();
    this.#liveness.flush();
    await this.#livenessWrite;
  }

  async #writeLiveness(batch: readonly LivenessParams[]): Promise<void> {
    // In id order: two batches (two replicas) lock the rows in one order, never a deadlock.
    const sorted = [...batch].sort((a, b) => (a[6] < b[6] ? -1 : a[6] > b[6] ? 1 : 0));
    const column = (i: number): unknown[] => sorted.map((params) => params[i]);
    await this.#tx(async (db) => {
      await db.query(
        `UPDATE agents AS a SET last_checkin_at = v.at, agent_version = v.agent_version, daemon_version = v.daemon_version, health_json = v.health_json,
           update_json = v.update_json, inventory_json = coalesce(v.inventory_json, a.inventory_json)
         FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[]) AS v(at, agent_version, daemon_version, health_json, update_json, inventory_json, id)
         WHERE a.id = v.id`,
        [0, 1, 2, 3, 4, 5, 6].map(column),
      );
    }, false);
  }

  // One statement (or a few reads) outside a transaction, retried like a transaction.
  #read<T>(fn: (db: Queryable) => Promise<T>): Promise<T> {
    return this.#attempts(this.#maxAttempts, async () => {
      try {
        return await fn(this.#pool);
      } catch (error) {
        if (isRetryable(error)) throw new RetryAfterRollback(undefined, { cause: error });
        throw error;
      }
    });
  }

  // One transaction on one client: BEGIN, fn, COMMIT; retried whole on 40001, 40P01 and a connection
  // lost before COMMIT was sent.
  async #tx<T>(fn: (db: PoolClient) => Promise<T>, flush = true, maxAttempts = this.#maxAttempts): Promise<T> {
    if (flush) await this.#open();
    else this.#notClosed();
    return this.#attempts(maxAttempts, async () => {
      let client: PoolClient;
      try {
        client = await this.#pool.connect();
      } catch (error) {
        if (isRetryable(error)) throw new RetryAfterRollback(undefined, { cause: error });
        // Whatever failed while connecting (authentication included) is an outage of the store.
        throw this.#error(error, true);
      }
      // A connection lost between two statements is reported to the next one; without a listener
      // here the client's own 'error' event would end the process.
      const ignore = (): void => undefined;
      client.on('error', ignore);
      let committing = false;
      try {
        await client.query('BEGIN');
        this.#notifyFor.delete(client);
        const result = await fn(client);
        await this.#notifyCommands(client);
        committing = true;
        await client.query('COMMIT');
        client.off('error', ignore);
        client.release();
        return result;
      } catch (error) {
        const lost = isConnectionError(error);
        if (!lost) await client.query('ROLLBACK').catch(() => undefined);
        // A lost connection is destroyed, not returned to the pool.
        client.off('error', ignore);
        client.release(lost ? (error as Error) : undefined);
        if (!committing && isRetryable(error)) throw new RetryAfterRollback(undefined, { cause: error });
        throw error;
      }
    });
  }

  async #attempts<T>(maxAttempts: number, run: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await run();
      } catch (error) {
        if (error instanceof RetryAfterRollback) {
          if (attempt < maxAttempts) {
            // Full jitter: 10-50 ms, then 20-100 ms, ...
            await sleep((10 + Math.random() * 40) * 2 ** (attempt - 1));
            continue;
          }
          throw this.#error(error.cause);
        }
        throw this.#error(error);
      }
    }
  }

  // Inside a transaction: the change's audit records go to the outbox with it.
  async #audit(db: Queryable, audit: readonly records.PendingAuditRecord[] | undefined): Promise<void> {
    if (audit === undefined || audit.length === 0) return;
    // In the given order: ids are assigned as the ordered rows are inserted.
    await db.query('INSERT INTO audit_outbox (body) SELECT body FROM unnest($1::text[]) WITH ORDINALITY AS a(body, n) ORDER BY n', [audit.map((record) => record.body)]);
  }

  async ping(): Promise<void> {
    this.#notClosed();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new ManagerError('STORE_UNAVAILABLE', `PostgreSQL at ${this.where} did not answer SELECT 1 within 2 s.`));
      }, 2000);
    });
    try {
      await Promise.race([
        (async () => {
          // Like SQLite's: buffered liveness is written first (within the same 2 s).
          await this.#open();
          await this.#pool.query({ text: 'SELECT 1', query_timeout: 2000 } as { text: string });
        })().catch((error: unknown) => {
          throw this.#error(error);
        }),
        timeout,
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#liveness.flush();
    await this.#livenessWrite;
    this.#closed = true;
    this.#commandWatchers.clear();
    this.#unlisten();
    // A lease still held would keep its connection out of the pool, and the pool from ending.
    await Promise.all([...this.#leases].map((release) => release()));
    await this.#pool.end();
  }

  // -- enrollment tokens

  createEnrollmentToken(token: records.NewEnrollmentToken, audit?: readonly records.PendingAuditRecord[]): Promise<records.EnrollmentTokenRecord> {
    const id = token.tokenHash.slice(0, 16);
    return this.#tx(async (db) => {
      const row = await one<TokenRow>(
        db,
        'INSERT INTO enrollment_tokens (id, token_hash, seats, created_at, expires_at, created_by, note) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *',
        [id, token.tokenHash, token.seats, token.createdAt.getTime(), token.expiresAt.getTime(), token.createdBy, token.note ?? null],
      );
      if (row === undefined) throw new Error('enrollment token vanished after insert');
      await this.#audit(db, audit);
      return tokenRecord(row);
    });
  }

  async listEnrollmentTokens(): Promise<records.EnrollmentTokenRecord[]> {
    await this.#open();
    return (await this.#read((db) => all<TokenRow>(db, 'SELECT * FROM enrollment_tokens ORDER BY created_at, id'))).map(tokenRecord);
  }

  revokeEnrollmentToken(id: string, at: Date, audit?: readonly records.PendingAuditRecord[]): Promise<boolean> {
    return this.#tx(async (db) => {
      if ((await one(db, 'SELECT id FROM enrollment_tokens WHERE id = $1 FOR UPDATE', [id])) === undefined) return false;
      await db.query('UPDATE enrollment_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL', [at.getTime(), id]);
      await this.#audit(db, audit);
      return true;
    });
  }

  // -- agents

  importAgents(agents: readonly records.ImportAgentInput[], now: Date, audit?: readonly records.PendingAuditRecord[]): Promise<records.ImportAgentsResult> {
    return this.#tx(async (db): Promise<records.ImportAgentsResult> => {
      // All or nothing: any id or machine already here and nothing is written (the unique
      // constraints catch a racing insert, which rolls the whole transaction back).
      const existing = await db.query<{ id: string; machine_id: string }>(
        'SELECT id, machine_id FROM agents WHERE id = ANY($1::text[]) OR machine_id = ANY($2::text[])',
        [agents.map((a) => a.id), agents.map((a) => a.machineId)],
      );
      const ids = new Set(existing.rows.flatMap((row) => [row.id, row.machine_id]));
      const taken = agents.filter((a) => ids.has(a.id) || ids.has(a.machineId)).map((a) => a.id);
      if (taken.length > 0) return { ok: false, taken };
      const at = now.getTime();
      const imported: records.AgentRecord[] = [];
      for (const a of agents) {
        const row = await one<AgentRow>(
          db,
          `INSERT INTO agents (id, machine_id, hostname, platform, arch, agent_version, daemon_version, credential_hash,
             service_token_enc, enrollment_token_id, enrolled_at, credential_issued_at, inventory_json, rollout_group, push_url)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, $10, $11, '{}', $12, $13) RETURNING *`,
          [a.id, a.machineId, a.hostname, a.platform, a.arch, a.agentVersion, a.daemonVersion, a.credentialHash, a.serviceTokenCiphertext, at, at, a.group ?? null, a.pushUrl],
        );
        if (row === undefined) throw new Error('an imported agent vanished inside its transaction');
        imported.push(agentRecord(row));
      }
      await this.#audit(db, audit);
      return { ok: true, agents: imported };
    });
  }

  enrollAgent(input: records.EnrollAgentInput, audit?: (enrolled: Extract<records.EnrollAgentResult, { ok: true }>) => readonly records.PendingAuditRecord[]): Promise<records.EnrollAgentResult> {
    return this.#tx(async (db): Promise<records.EnrollAgentResult> => {
      // The token row locked first: a revocation or another enrollment of it waits for this one.
      const tokenRow = await one<TokenRow>(db, 'SELECT * FROM enrollment_tokens WHERE token_hash = $1 FOR UPDATE', [input.tokenHash]);
      const existing = await one<AgentRow>(db, 'SELECT * FROM agents WHERE machine_id = $1 FOR UPDATE', [input.machineId]);
      if (tokenRow === undefined) return enrollRefused('token_unknown', undefined, existing);
      const refusal = enrollRefusal(input, tokenRow, existing);
      if (refusal !== undefined) return enrollRefused(refusal, tokenRow, existing);
      // Seats: a conditional increment on the locked row, so two enrollments racing for the last seat cannot both win.
      const spent = await db.query('UPDATE enrollment_tokens SET used = used + 1 WHERE id = $1 AND used < seats', [tokenRow.id]);
      if (spent.rowCount !== 1) return enrollRefused('token_exhausted', tokenRow, existing);
      const now = input.now.getTime();
      const inventory = JSON.stringify(input.inventory);
      let agent: AgentRow | undefined;
      if (existing === undefined) {
        agent = await one<AgentRow>(
          db,
          `INSERT INTO agents (id, machine_id, hostname, platform, arch, agent_version, daemon_version, credential_hash,
             service_token_enc, enrollment_token_id, enrolled_at, credential_issued_at, inventory_json)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING *`,
          [input.newAgentId, input.machineId, input.hostname, input.platform, input.arch, input.agentVersion, input.daemonVersion,
            input.credentialHash, input.serviceTokenCiphertext, tokenRow.id, now, now, inventory],
        );
      } else {
        agent = await one<AgentRow>(
          db,
          `UPDATE agents SET hostname = $1, platform = $2, arch = $3, agent_version = $4, daemon_version = $5, credential_hash = $6,
             service_token_enc = $7, enrollment_token_id = $8, credential_issued_at = $9, inventory_json = $10, revoked_at = NULL, pending_credential_hash = NULL WHERE id = $11 RETURNING *`,
          [input.hostname, input.platform, input.arch, input.agentVersion, input.daemonVersion, input.credentialHash,
            input.serviceTokenCiphertext, tokenRow.id, now, inventory, existing.id],
        );
      }
      const token = await one<TokenRow>(db, 'SELECT * FROM enrollment_tokens WHERE id = $1', [tokenRow.id]);
      if (agent === undefined || token === undefined) throw new Error('enrollment rows vanished inside their transaction');
      const enrolled = { ok: true as const, agent: agentRecord(agent), token: tokenRecord(token), reenrolled: existing !== undefined, previousCredentialHash: existing?.credential_hash };
      if (audit !== undefined) await this.#audit(db, audit(enrolled));
      return enrolled;
    });
  }

  async getAgent(agentId: string): Promise<records.AgentRecord | undefined> {
    await this.#open();
    const row = await this.#read((db) => one<AgentRow>(db, 'SELECT * FROM agents WHERE id = $1', [agentId]));
    return row === undefined ? undefined : agentRecord(row);
  }

  async getAgentByCredentialHash(credentialHash: string): Promise<records.AgentIdentity | undefined> {
    // The hot path: no flush (the credential columns are never in the liveness buffer).
    this.#notClosed();
    const row = await this.#read((db) =>
      // The current credential or a pending one (decision 0032): two indexed lookups.
      one<Pick<AgentRow, 'id' | 'machine_id' | 'credential_hash' | 'revoked_at'> & { pending: number }>(
        db,
        `SELECT id, machine_id, credential_hash, revoked_at, 0 AS pending FROM agents WHERE credential_hash = $1
         UNION ALL SELECT id, machine_id, pending_credential_hash AS credential_hash, revoked_at, 1 AS pending FROM agents WHERE pending_credential_hash = $1`,
        [credentialHash],
      ),
    );
    return row === undefined
      ? undefined
      : { id: row.id, machineId: row.machine_id, credentialHash: row.credential_hash, revokedAt: row.revoked_at === null ? undefined : new Date(row.revoked_at), pending: row.pending === 1 };
  }

  setPendingCredential(agentId: string, currentHash: string, pendingHash: string, audit?: readonly records.PendingAuditRecord[]): Promise<boolean> {
    return this.#tx(async (db) => {
      const updated = await db.query('UPDATE agents SET pending_credential_hash = $1 WHERE id = $2 AND credential_hash = $3 AND revoked_at IS NULL', [pendingHash, agentId, currentHash]);
      if (updated.rowCount !== 1) return false;
      await this.#audit(db, audit);
      return true;
    });
  }

  promoteCredential(agentId: string, pendingHash: string, at: Date, audit?: readonly records.PendingAuditRecord[]): Promise<boolean> {
    return this.#tx(async (db) => {
      const updated = await db.query(
        'UPDATE agents SET credential_hash = pending_credential_hash, pending_credential_hash = NULL, credential_issued_at = $1 WHERE id = $2 AND pending_credential_hash = $3 AND revoked_at IS NULL',
        [at.getTime(), agentId, pendingHash],
      );
      if (updated.rowCount !== 1) return false;
      await this.#audit(db, audit);
      return true;
    });
  }

  revokeAgent(agentId: string, at: Date, audit?: readonly records.PendingAuditRecord[]): Promise<'revoked' | 'already' | 'not_found'> {
    return this.#tx(async (db) => {
      const row = await one<Pick<AgentRow, 'revoked_at'>>(db, 'SELECT revoked_at FROM agents WHERE id = $1 FOR UPDATE', [agentId]);
      if (row === undefined) return 'not_found' as const;
      if (row.revoked_at !== null) return 'already' as const;
      await db.query('UPDATE agents SET revoked_at = $1, pending_credential_hash = NULL WHERE id = $2', [at.getTime(), agentId]);
      await this.#audit(db, audit);
      return 'revoked' as const;
    });
  }

  async listAgents(options: records.ListAgentsOptions): Promise<records.AgentRecord[]> {
    await this.#open();
    const where = agentFilterWhere(options, postgresFilter, 3);
    const sql = `SELECT * FROM agents WHERE id > $1 AND ${where.sql} ORDER BY id LIMIT $2`;
    return (await this.#read((db) => all<AgentRow>(db, sql, [options.after ?? '', options.limit, ...where.params]))).map(agentRecord);
  }

  async listFleetDetails(agentIds: readonly string[]): Promise<records.FleetDetails[]> {
    await this.#open();
    const ids = [...agentIds];
    return this.#read(async (db) =>
      fleetDetails(
        await all<{ id: string; rollout_group: string | null }>(db, 'SELECT id, rollout_group FROM agents WHERE id = ANY($1::text[])', [ids]),
        await all<CommandRow>(db, 'SELECT DISTINCT ON (agent_id) * FROM commands WHERE acked_at IS NULL AND agent_id = ANY($1::text[]) ORDER BY agent_id, seq', [ids]),
      ),
    );
  }

  async countAgents(filter: records.AgentFilter = {}): Promise<number> {
    await this.#open();
    const where = agentFilterWhere(filter, postgresFilter);
    return (await this.#read((db) => one<{ n: number }>(db, `SELECT count(*) AS n FROM agents WHERE ${where.sql}`, where.params)))?.n ?? 0;
  }

  // -- check-ins, commands, nonces

  async recordCheckin(write: records.CheckinWrite): Promise<records.CheckinWriteResult> {
    const at = write.at.getTime();
    const liveness = livenessParams(write);
    const plain = write.acks.length === 0 && write.results.length === 0 && (write.audit?.length ?? 0) === 0;
    if (plain) {
      this.#notClosed();
      // The common check-in: liveness buffered, one indexed read for pending commands.
      const pending = await this.#read((db) => one(db, 'SELECT 1 AS one FROM commands WHERE agent_id = $1 AND acked_at IS NULL LIMIT 1', [write.agentId]));
      if (pending === undefined) {
        this.#liveness.add(write.agentId, liveness);
        return { ok: true, commands: [] };
      }
    }
    try {
      return await this.#tx(async (db): Promise<records.CheckinWriteResult> => {
        await db.query(
          `UPDATE agents SET last_checkin_at = $1, agent_version = $2, daemon_version = $3, health_json = $4, update_json = $5,
             inventory_json = coalesce($6, inventory_json) WHERE id = $7`,
          liveness,
        );
        for (const commandId of write.acks) await db.query('UPDATE commands SET acked_at = $1 WHERE id = $2 AND agent_id = $3 AND acked_at IS NULL', [at, commandId, write.agentId]);
        for (const result of write.results) {
          const consume = result.consumeNonce;
          if (consume !== undefined) {
            // Single use: the WHERE makes consumption a compare-and-set, whatever raced before it.
            const consumed = await db.query('UPDATE nonces SET consumed_at = $1, consumed_outcome = $2, reported_version = $3 WHERE id = $4 AND agent_id = $5 AND consumed_at IS NULL', [
              at, result.outcome, consume.reportedVersion, consume.nonceId, write.agentId,
            ]);
            // Throwing rolls the whole check-in back: a replayed completion changes nothing.
            if (consumed.rowCount !== 1) throw new NonceReplayed(consume.nonceId, result.commandId);
          }
          await db.query('UPDATE commands SET outcome = $1, outcome_detail_json = $2, outcome_at = $3, acked_at = coalesce(acked_at, $4) WHERE id = $5 AND agent_id = $6', [
            result.outcome, JSON.stringify(result.detail), at, at, result.commandId, write.agentId,
          ]);
        }
        await this.#audit(db, write.audit);
        const rows = await all<CommandRow>(
          db,
          `UPDATE commands SET delivered_count = delivered_count + 1, last_delivered_at = $1
           WHERE seq IN (SELECT seq FROM commands WHERE agent_id = $2 AND acked_at IS NULL ORDER BY seq LIMIT $3) AND acked_at IS NULL RETURNING *`,
          [at, write.agentId, write.commandLimit],
        );
        rows.sort((a, b) => a.seq - b.seq);
        return { ok: true, commands: rows.map(commandRecord) };
      });
    } catch (error) {
      return replayedCheckin(error);
    }
  }

  insertCommand(command: records.NewCommand, nonce?: records.NewNonce, audit?: readonly records.PendingAuditRecord[]): Promise<void> {
    return this.#tx(async (db) => {
      await this.#insertCommands(db, [{ command, nonce }]);
      await this.#audit(db, audit);
    });
  }

  async #insertCommands(db: Queryable, items: readonly { command: records.NewCommand; nonce?: records.NewNonce | undefined }[]): Promise<void> {
    // Told to every manager sharing the database when the transaction commits (the command channel).
    const notify = this.#notifyFor.get(db as PoolClient) ?? [];
    this.#notifyFor.set(db as PoolClient, notify);
    for (const { command } of items) notify.push(command.agentId);
    await insertRows(
      db,
      'commands',
      items.map(({ command, nonce }) => ({
        id: command.id, agent_id: command.agentId, type: command.type, deployment_id: command.deploymentId ?? null, nonce_id: nonce?.id ?? null,
        body_json: JSON.stringify(command.body), created_at: command.createdAt.getTime(),
      })),
    );
    await insertRows(
      db,
      'nonces',
      items.flatMap(({ nonce }) => (nonce === undefined ? [] : [{
        id: nonce.id, agent_id: nonce.agentId, machine_id: nonce.machineId, command_id: nonce.commandId, deployment_id: nonce.deploymentId, artifact: nonce.artifact,
        from_version: nonce.fromVersion, to_version: nonce.toVersion, rollback: nonce.rollback, token: nonce.token, issued_at: nonce.issuedAt.getTime(), expires_at: nonce.expiresAt.getTime(),
      }])),
    );
  }

  async getCommand(commandId: string): Promise<records.CommandRecord | undefined> {
    await this.#open();
    const row = await this.#read((db) => one<CommandRow>(db, 'SELECT * FROM commands WHERE id = $1', [commandId]));
    return row === undefined ? undefined : commandRecord(row);
  }

  async listCommands(agentId: string): Promise<records.CommandRecord[]> {
    await this.#open();
    return (await this.#read((db) => all<CommandRow>(db, 'SELECT * FROM commands WHERE agent_id = $1 ORDER BY seq', [agentId]))).map(commandRecord);
  }

  async getNonce(nonceId: string): Promise<records.NonceRecord | undefined> {
    await this.#open();
    const row = await this.#read((db) => one<PgNonceRow>(db, 'SELECT * FROM nonces WHERE id = $1', [nonceId]));
    return row === undefined ? undefined : pgNonceRecord(row);
  }

  // -- releases

  async insertRelease(release: records.NewRelease, audit?: readonly records.PendingAuditRecord[]): Promise<'inserted' | 'exists'> {
    const inserted = await this.#tx(async (db) => {
      const result = await db.query(
        `INSERT INTO releases (artifact, version, version_key, platform, channel, file_name, file_size, file_sha256, envelope_json,
           manifest_json, created_at, expires_at, state, registered_at, published_at, published_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) ON CONFLICT DO NOTHING`,
        [release.artifact, release.version, release.versionKey, release.platform, release.channel, release.file.name, release.file.size,
          release.file.sha256, JSON.stringify(release.envelope), JSON.stringify(release.manifest), release.createdAt.getTime(),
          release.expiresAt.getTime(), release.state, release.registeredAt.getTime(), release.publishedAt?.getTime() ?? null, release.publishedBy],
      );
      if (result.rowCount === 1) await this.#audit(db, audit);
      return result.rowCount === 1;
    });
    return inserted ? 'inserted' : 'exists';
  }

  async getRelease(artifact: string, versionKey: string, platform: string): Promise<records.ReleaseRecord | undefined> {
    await this.#open();
    const row = await this.#read((db) => one<ReleaseRow>(db, 'SELECT * FROM releases WHERE artifact = $1 AND version_key = $2 AND platform = $3', [artifact, versionKey, platform]));
    return row === undefined ? undefined : releaseRecord(row);
  }

  async listReleases(query: records.ReleaseQuery): Promise<records.ReleaseRecord[]> {
    await this.#open();
    const rows = await this.#read((db) =>
      all<ReleaseRow>(
        db,
        `SELECT * FROM releases WHERE artifact = $1 AND ($2::text IS NULL OR platform = $2) AND ($3::text IS NULL OR channel = $3)
           AND ($4::text IS NULL OR state = $4) ORDER BY registered_at, version_key`,
        [query.artifact, query.platform ?? null, query.channel ?? null, query.state ?? null],
      ),
    );
    return rows.map(releaseRecord);
  }

  markReleasePublished(artifact: string, versionKey: string, platform: string, at: Date, audit?: readonly records.PendingAuditRecord[]): Promise<boolean> {
    return this.#tx(async (db) => {
      const result = await db.query("UPDATE releases SET state = 'published', published_at = $1 WHERE artifact = $2 AND version_key = $3 AND platform = $4 AND state = 'pending'", [
        at.getTime(), artifact, versionKey, platform,
      ]);
      const published = result.rowCount === 1;
      if (published) await this.#audit(db, audit);
      return published;
    });
  }

  // -- the audit outbox

  appendAudit(audit: readonly records.PendingAuditRecord[]): Promise<void> {
    return this.#tx((db) => this.#audit(db, audit));
  }

  async listAuditOutbox(limit: number): Promise<records.AuditOutboxRow[]> {
    await this.#open();
    return this.#read((db) => all<records.AuditOutboxRow>(db, 'SELECT id, body FROM audit_outbox ORDER BY id LIMIT $1', [limit]));
  }

  completeAuditOutbox(ids: readonly number[], headKey: string, head: string): Promise<void> {
    return this.#tx(async (db) => {
      await db.query('DELETE FROM audit_outbox WHERE id = ANY($1::bigint[])', [[...ids]]);
      await db.query('INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value', [headKey, head]);
    });
  }

  // -- the audit chain (decision 0038): one for every replica, appended under one advisory lock

  chainAuditOutbox(limit: number, build: records.AuditChainBuilder, headKey: string): Promise<number> {
    return this.#tx(async (db) => {
      // Signing happens inside: a signer with a round trip (an HSM, KMS) needs more than a statement's time.
      await db.query(`SET LOCAL statement_timeout = ${AUDIT_CHAIN_TIMEOUT_MS}; SET LOCAL idle_in_transaction_session_timeout = ${AUDIT_CHAIN_TIMEOUT_MS}`);
      await db.query(AUDIT_CHAIN_LOCK_SQL);
      const rows = await all<{ id: string; body: string }>(db, 'SELECT id, body FROM audit_outbox ORDER BY id LIMIT $1', [limit]);
      if (rows.length === 0) return 0;
      const last = await one<{ line: string }>(db, 'SELECT line FROM audit_chain ORDER BY seq DESC LIMIT 1');
      // A chain kept in a file so far (its head is in meta) is copied in by the manager that has the
      // file (audit/open.ts): until then no replica starts another chain beside it.
      if (last === undefined && (await one(db, 'SELECT 1 FROM meta WHERE key = $1', [headKey])) !== undefined) {
        throw new ManagerError('AUDIT_UNAVAILABLE', 'The audit chain is still in the log file of the manager that ran before on this database: start that manager (its directory holds audit/audit.jsonl) so that it moves the chain into the database. Records wait in the outbox meanwhile.');
      }
      const { lines, head } = await build(last?.line, rows.map((row) => ({ id: Number(row.id), body: row.body })));
      await db.query('INSERT INTO audit_chain (seq, line) SELECT * FROM unnest($1::bigint[], $2::text[])', [lines.map((l) => l.seq), lines.map((l) => l.line)]);
      await db.query('DELETE FROM audit_outbox WHERE id = ANY($1::bigint[])', [rows.map((row) => row.id)]);
      await db.query('INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value', [headKey, head]);
      return rows.length;
    });
  }

  async readAuditChain(afterSeq: number, limit: number, options: { latest?: boolean; before?: number } = {}): Promise<records.AuditChainLine[]> {
    await this.#open();
    const found = await this.#read((db) =>
      options.latest === true
        ? all<{ seq: string; line: string }>(db, 'SELECT * FROM (SELECT seq, line FROM audit_chain WHERE seq < $2 ORDER BY seq DESC LIMIT $1) AS latest ORDER BY seq', [limit, options.before ?? Number.MAX_SAFE_INTEGER])
        : all<{ seq: string; line: string }>(db, 'SELECT seq, line FROM audit_chain WHERE seq > $1 ORDER BY seq LIMIT $2', [afterSeq, limit]),
    );
    return found.map((row) => ({ seq: Number(row.seq), line: row.line }));
  }

  importAuditChain(lines: AsyncIterable<records.AuditChainLine>, headKey: string, head: string): Promise<boolean> {
    // Not retried: the lines can be read once.
    return this.#tx(async (db) => {
      await db.query(AUDIT_CHAIN_LOCK_SQL);
      if ((await one(db, 'SELECT 1 FROM audit_chain LIMIT 1')) !== undefined) return false;
      let batch: records.AuditChainLine[] = [];
      const insert = async (): Promise<void> => {
        await db.query('INSERT INTO audit_chain (seq, line) SELECT * FROM unnest($1::bigint[], $2::text[])', [batch.map((l) => l.seq), batch.map((l) => l.line)]);
        batch = [];
      };
      for await (const line of lines) {
        batch.push(line);
        if (batch.length >= 500) await insert();
      }
      if (batch.length > 0) await insert();
      await db.query('INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value', [headKey, head]);
      return true;
    }, true, 1);
  }

  // -- meta

  async getMeta(key: string): Promise<string | undefined> {
    await this.#open();
    return (await this.#read((db) => one<{ value: string }>(db, 'SELECT value FROM meta WHERE key = $1', [key])))?.value;
  }

  async setMeta(key: string, value: string): Promise<void> {
    await this.#tx(async (db) => {
      await db.query('INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value', [key, value]);
    });
  }

  // -- rollouts

  setAgentRolloutSettings(agentId: string, settings: rollout.AgentRolloutSettings, audit?: readonly records.PendingAuditRecord[]): Promise<boolean> {
    return this.#tx(async (db) => {
      const set = await rollouts.setSettings(db, agentId, settings);
      if (set) await this.#audit(db, audit);
      return set;
    });
  }

  async getAgentRolloutSettings(agentId: string): Promise<rollout.AgentRolloutSettings | undefined> {
    await this.#open();
    return this.#read((db) => rollouts.getSettings(db, agentId));
  }

  async listRolloutCandidates(): Promise<rollout.RolloutCandidate[]> {
    await this.#open();
    return this.#read((db) => rollouts.candidates(db));
  }

  async createDeployment(
    deployment: rollout.DeploymentRecord,
    targets: readonly rollout.TargetRecord[],
    events: readonly rollout.NewDeploymentEvent[],
    supersede: rollout.RolloutWrite[] = [],
    audit?: readonly records.PendingAuditRecord[],
    fence?: records.LeaseFence,
  ): Promise<{ ok: true } | { ok: false; active: string }> {
    try {
      await this.#tx(async (db) => {
        await checkFence(db, fence);
        // One active deployment per artifact, across replicas: whoever holds the artifact's lock
        // checks and creates; the other waits, then sees the committed winner.
        await db.query(DEPLOYMENT_LOCK_SQL, [deployment.artifact]);
        for (const write of supersede) {
          await rollouts.writeRollout(db, write, (items) => this.#insertCommands(db, items));
          await this.#audit(db, write.audit);
        }
        const active = await rollouts.activeOf(db, deployment.artifact);
        // Throwing rolls back the superseding too: nothing of a refused deployment stays.
        if (active !== undefined) throw new DeploymentActive(active);
        await rollouts.writeRollout(db, { deployment, targets: [...targets], events: [...events] }, (items) => this.#insertCommands(db, items));
        await this.#audit(db, audit);
      });
    } catch (error) {
      if (error instanceof DeploymentActive) return { ok: false, active: error.active };
      throw error;
    }
    return { ok: true };
  }

  async getDeployment(id: string): Promise<rollout.DeploymentRecord | undefined> {
    await this.#open();
    return this.#read((db) => rollouts.getDeployment(db, id));
  }

  async listDeployments(options: { active?: boolean; open?: boolean; limit: number }): Promise<rollout.DeploymentRecord[]> {
    await this.#open();
    return this.#read((db) => rollouts.listDeployments(db, options.active === true ? 'active' : options.open === true ? 'open' : 'all', options.limit));
  }

  writeRollout(write: rollout.RolloutWrite): Promise<void> {
    return this.#tx(async (db) => {
      await checkFence(db, write.fence);
      await rollouts.writeRollout(db, write, (items) => this.#insertCommands(db, items));
      await this.#audit(db, write.audit);
    });
  }

  async listTargets(deploymentId: string): Promise<rollout.TargetRecord[]> {
    await this.#open();
    return this.#read((db) => rollouts.targets(db, deploymentId));
  }

  async listTargetViews(deploymentId: string, options: { open?: boolean; phase?: number; pendingLimit?: number } = {}): Promise<rollout.TargetView[]> {
    await this.#open();
    return this.#read((db) => rollouts.targetViews(db, deploymentId, options.open ?? false, options.phase, options.pendingLimit));
  }

  async countTargets(deploymentId: string): Promise<{ byState: rollout.TargetCounts; byPhase: rollout.TargetCounts[]; deferred: number }> {
    await this.#open();
    return this.#read((db) => rollouts.counts(db, deploymentId));
  }

  async listDeploymentEvents(deploymentId: string | undefined, afterSeq: number, limit: number, options: { latest?: boolean } = {}): Promise<rollout.DeploymentEventRecord[]> {
    await this.#open();
    return this.#read((db) => rollouts.events(db, deploymentId, afterSeq, limit, options.latest ?? false));
  }

  // -- the command channel's notices (decision 0041): NOTIFY in the transaction that writes
  // commands, one LISTEN connection per store while someone watches.

  async #notifyCommands(client: PoolClient): Promise<void> {
    const agentIds = this.#notifyFor.get(client);
    this.#notifyFor.delete(client);
    if (agentIds === undefined || agentIds.length === 0) return;
    for (const payload of commandNotices(agentIds)) await client.query('SELECT pg_notify($1, $2)', [COMMAND_CHANNEL, payload]);
  }

  watchCommands(listener: (agentIds: readonly string[] | 'all') => void): () => void {
    this.#commandWatchers.add(listener);
    if (!this.#listening) {
      this.#listening = true;
      void this.#listen();
    }
    return () => {
      this.#commandWatchers.delete(listener);
      if (this.#commandWatchers.size === 0) this.#unlisten();
    };
  }

  // A method, so the compiler does not narrow the state across awaits.
  #unwatched(): boolean {
    return this.#closed || this.#commandWatchers.size === 0;
  }

  #emit(agentIds: readonly string[] | 'all'): void {
    for (const listener of [...this.#commandWatchers]) listener(agentIds);
  }

  async #listen(): Promise<void> {
    if (this.#unwatched()) return;
    let client: PoolClient | undefined;
    try {
      client = await this.#pool.connect();
      const held = client;
      // Closed or unwatched meanwhile: a connection kept now would hold the pool open.
      if (this.#unwatched()) {
        held.release(true);
        return;
      }
      this.#listener = held;
      held.on('notification', (message) => {
        if (message.channel !== COMMAND_CHANNEL || message.payload === undefined) return;
        try {
          const ids: unknown = JSON.parse(message.payload);
          if (Array.isArray(ids)) this.#emit(ids.filter((id): id is string => typeof id === 'string'));
        } catch {
          this.#emit('all');
        }
      });
      held.on('error', () => {
        this.#relisten(held);
      });
      held.on('end', () => {
        this.#relisten(held);
      });
      await held.query(`LISTEN ${COMMAND_CHANNEL}`);
      // Notices sent before LISTEN took effect are lost: whoever waits looks again.
      this.#emit('all');
    } catch (error) {
      // Told like a connection lost while idle: the channel's notices stop until it comes back.
      this.#onConnectionError(error instanceof ManagerError ? error : new ManagerError('STORE_UNAVAILABLE', `PostgreSQL at ${this.where}: could not LISTEN for commands (the command channel waits up to its full wait until it can).`, { cause: this.#error(error) }));
      if (client !== undefined) this.#relisten(client);
      else this.#scheduleListen();
    }
  }

  // The LISTEN connection failed: destroyed, and made again in a moment; waiters look again then.
  #relisten(client: PoolClient): void {
    if (this.#listener !== client) return;
    this.#listener = undefined;
    client.release(true);
    this.#scheduleListen();
  }

  #scheduleListen(): void {
    if (this.#closed || this.#commandWatchers.size === 0 || this.#listenRetry !== undefined) return;
    this.#listenRetry = setTimeout(() => {
      this.#listenRetry = undefined;
      void this.#listen();
    }, LISTEN_RETRY_MS);
    this.#listenRetry.unref();
  }

  #unlisten(): void {
    clearTimeout(this.#listenRetry);
    this.#listenRetry = undefined;
    const client = this.#listener;
    this.#listener = undefined;
    this.#listening = false;
    if (client !== undefined) client.release(true);
  }

  // -- leases

  async lease(name: string, options: records.LeaseOptions): Promise<records.Lease | undefined> {
    await this.#open();
    let client: PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (error) {
      throw this.#error(error, true);
    }
    let lost = false;
    let released = false;
    const onError = (): void => {
      lost = true;
    };
    client.on('error', onError);
    // The session's own settings: the client is destroyed, never returned to the pool.
    const drop = (): void => {
      client.off('error', onError);
      client.release(true);
    };
    const waitMs = Math.max(0, Math.trunc(options.waitMs ?? LEASE_WAIT_MS));
    let token: number;
    try {
      await client.query(`SET statement_timeout = ${waitMs + 1000}; SET lock_timeout = ${waitMs}`);
      // PostgreSQL 14 and later: a stalled holder's session is ended. On 13 the setting does not
      // exist (42704): a stalled holder keeps the lease until its connection dies (decision 0038).
      await client.query(`SET idle_session_timeout = ${LEASE_IDLE_MS}`).catch((error: unknown) => {
        if ((error as { code?: unknown }).code !== '42704') throw error;
      });
      if (options.wait) {
        await client.query({ text: `SELECT pg_advisory_lock(${LEASE_KEY_SQL})`, values: [name], query_timeout: waitMs + 2000 } as { text: string; values: unknown[] });
      } else {
        const [row] = (await client.query<{ ok: boolean }>(`SELECT pg_try_advisory_lock(${LEASE_KEY_SQL}) AS ok`, [name])).rows;
        if (row?.ok !== true) {
          drop();
          return undefined;
        }
      }
      const [row] = (
        await client.query<{ token: string }>(
          `INSERT INTO leases (name, token, holder, acquired_at) VALUES ($1, 1, $2, $3)
           ON CONFLICT (name) DO UPDATE SET token = leases.token + 1, holder = excluded.holder, acquired_at = excluded.acquired_at RETURNING token`,
          [name, options.holder, Date.now()],
        )
      ).rows;
      token = Number(row?.token);
    } catch (error) {
      drop();
      const code = (error as { code?: unknown }).code;
      if (code === '55P03' || code === '57014') {
        throw new ManagerError('LEASE_BUSY', `Another manager replica held the ${name} lease for more than ${Math.round(waitMs / 1000)} s: nothing was changed. Retry in a moment.`, { cause: this.#error(error) });
      }
      throw this.#error(error);
    }
    const heartbeat = setInterval(() => {
      client.query('SELECT 1').catch(() => {
        lost = true;
      });
    }, LEASE_HEARTBEAT_MS);
    heartbeat.unref();
    const release = async (): Promise<void> => {
      if (released) return;
      released = true;
      this.#leases.delete(release);
      clearInterval(heartbeat);
      // Ending the session lets go of the lock even if the unlock below cannot run.
      if (!lost) await client.query(`SELECT pg_advisory_unlock(${LEASE_KEY_SQL})`, [name]).catch(() => undefined);
      drop();
    };
    this.#leases.add(release);
    return {
      name,
      token,
      get lost() {
        return lost;
      },
      release,
    };
  }
}
