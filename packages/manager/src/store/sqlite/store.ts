import { chmodSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { JsonObject } from '@drover/protocol';
import { ManagerError } from '../../errors.js';
import { sqliteMigrations } from './migrations.js';
import { SqliteRollouts } from './rollouts.js';
import type {
  AgentRolloutSettings,
  DeploymentEventRecord,
  DeploymentRecord,
  NewDeploymentEvent,
  RolloutCandidate,
  RolloutWrite,
  TargetCounts,
  TargetRecord,
  TargetView,
} from '../../rollouts/records.js';
import type { Migration } from './migrations.js';
import type {
  AgentIdentity,
  AgentRecord,
  CheckinWrite,
  CheckinWriteResult,
  CommandRecord,
  EnrollAgentInput,
  EnrollAgentResult,
  EnrollmentTokenRecord,
  ListAgentsOptions,
  NewCommand,
  NewEnrollmentToken,
  NewNonce,
  NewRelease,
  NonceRecord,
  ReleaseQuery,
  ReleaseRecord,
} from '../records.js';
import type { Store } from '../store.js';

// The embedded store: one SQLite file through better-sqlite3.
//
// - WAL: readers never block the writer, and a commit appends to the WAL instead of rewriting pages.
// - synchronous=NORMAL by default: a commit does not fsync, the WAL is synced at checkpoints. A
//   power loss can drop the last commits but never corrupts the file. That is the right price for
//   a check-in that only refreshes liveness and health (the daemon says it all again next time).
//   Writes whose loss would matter (an enrollment, a spent seat, a consumed nonce, an ack, a
//   queued command, a release) run in `durable()`, with synchronous=FULL: synced before they return.
// - the plain check-in (no acks, no results) only refreshes liveness and health: those writes are
//   buffered per agent (the latest wins) and written in one transaction every LIVENESS_FLUSH_MS,
//   or sooner when many are waiting. An autocommit UPDATE costs ~11 us (its own WAL commit), a
//   batched one ~1 us: this is most of the check-in path's SQLite time. Any other call writes the
//   buffer out first, so no reader ever sees stale state, and close() writes it out too. A crash
//   loses at most the last LIVENESS_FLUSH_MS of liveness, which the next check-ins restore.
// - foreign keys on; every statement prepared once.

interface TokenRow {
  id: string;
  token_hash: string;
  seats: number;
  used: number;
  created_at: number;
  expires_at: number;
  revoked_at: number | null;
  created_by: string;
  note: string | null;
}

interface AgentRow {
  id: string;
  machine_id: string;
  hostname: string;
  platform: string;
  arch: string;
  agent_version: string;
  daemon_version: string;
  credential_hash: string;
  service_token_enc: string;
  enrollment_token_id: string | null;
  enrolled_at: number;
  credential_issued_at: number;
  last_checkin_at: number | null;
  health_json: string | null;
  update_json: string | null;
  inventory_json: string;
}

interface CommandRow {
  seq: number;
  id: string;
  agent_id: string;
  type: string;
  deployment_id: string | null;
  nonce_id: string | null;
  body_json: string;
  created_at: number;
  delivered_count: number;
  last_delivered_at: number | null;
  acked_at: number | null;
  outcome: string | null;
  outcome_detail_json: string | null;
  outcome_at: number | null;
}

interface NonceRow {
  id: string;
  agent_id: string;
  machine_id: string;
  command_id: string;
  deployment_id: string;
  artifact: string;
  from_version: string;
  to_version: string;
  rollback: number;
  token: string;
  issued_at: number;
  expires_at: number;
  consumed_at: number | null;
  consumed_outcome: string | null;
  reported_version: string | null;
}

interface ReleaseRow {
  artifact: string;
  version: string;
  version_key: string;
  platform: string;
  channel: string;
  file_name: string;
  file_size: number;
  file_sha256: string;
  envelope_json: string;
  manifest_json: string;
  created_at: number;
  expires_at: number;
  state: string;
  registered_at: number;
  published_at: number | null;
  published_by: string;
}

const date = (ms: number): Date => new Date(ms);
const optionalDate = (ms: number | null): Date | undefined => (ms === null ? undefined : new Date(ms));
const json = (text: string): JsonObject => JSON.parse(text) as JsonObject;
const optionalJson = (text: string | null): JsonObject | undefined => (text === null ? undefined : json(text));

function tokenRecord(row: TokenRow): EnrollmentTokenRecord {
  return {
    id: row.id,
    seats: row.seats,
    used: row.used,
    createdAt: date(row.created_at),
    expiresAt: date(row.expires_at),
    revokedAt: optionalDate(row.revoked_at),
    createdBy: row.created_by,
    note: row.note ?? undefined,
  };
}

function agentRecord(row: AgentRow): AgentRecord {
  return {
    id: row.id,
    machineId: row.machine_id,
    hostname: row.hostname,
    platform: row.platform,
    arch: row.arch,
    agentVersion: row.agent_version,
    daemonVersion: row.daemon_version,
    credentialHash: row.credential_hash,
    serviceTokenCiphertext: row.service_token_enc,
    enrollmentTokenId: row.enrollment_token_id ?? undefined,
    enrolledAt: date(row.enrolled_at),
    credentialIssuedAt: date(row.credential_issued_at),
    lastCheckinAt: optionalDate(row.last_checkin_at),
    health: optionalJson(row.health_json),
    update: optionalJson(row.update_json),
    inventory: json(row.inventory_json),
  };
}

function commandRecord(row: CommandRow): CommandRecord {
  return {
    id: row.id,
    agentId: row.agent_id,
    type: row.type,
    deploymentId: row.deployment_id ?? undefined,
    nonceId: row.nonce_id ?? undefined,
    body: json(row.body_json),
    createdAt: date(row.created_at),
    deliveredCount: row.delivered_count,
    lastDeliveredAt: optionalDate(row.last_delivered_at),
    ackedAt: optionalDate(row.acked_at),
    outcome: row.outcome ?? undefined,
    outcomeDetail: optionalJson(row.outcome_detail_json),
    outcomeAt: optionalDate(row.outcome_at),
  };
}

function nonceRecord(row: NonceRow): NonceRecord {
  return {
    id: row.id,
    agentId: row.agent_id,
    machineId: row.machine_id,
    commandId: row.command_id,
    deploymentId: row.deployment_id,
    artifact: row.artifact,
    fromVersion: row.from_version,
    toVersion: row.to_version,
    rollback: row.rollback === 1,
    token: row.token,
    issuedAt: date(row.issued_at),
    expiresAt: date(row.expires_at),
    consumedAt: optionalDate(row.consumed_at),
    consumedOutcome: row.consumed_outcome ?? undefined,
    reportedVersion: row.reported_version ?? undefined,
  };
}

function releaseRecord(row: ReleaseRow): ReleaseRecord {
  return {
    artifact: row.artifact,
    version: row.version,
    versionKey: row.version_key,
    platform: row.platform,
    channel: row.channel,
    file: { name: row.file_name, size: row.file_size, sha256: row.file_sha256 },
    envelope: json(row.envelope_json),
    manifest: json(row.manifest_json),
    createdAt: date(row.created_at),
    expiresAt: date(row.expires_at),
    state: row.state === 'published' ? 'published' : 'pending',
    registeredAt: date(row.registered_at),
    publishedAt: optionalDate(row.published_at),
    publishedBy: row.published_by,
  };
}

const LIVENESS_FLUSH_MS = 50; // milliseconds a buffered liveness write may wait
const LIVENESS_FLUSH_COUNT = 1000; // buffered agents that trigger an immediate write

type LivenessParams = [number, string, string, string, string | null, string | null, string];

class NonceReplayed extends Error {
  constructor(
    readonly nonceId: string,
    readonly commandId: string,
  ) {
    super('nonce already consumed');
  }
}

// Every statement the store runs, prepared once when it opens.
function prepareStatements(db: Database.Database) {
  return {
    ping: db.prepare<[], { one: number }>('SELECT 1 AS one'),
    tokenInsert: db.prepare<[string, string, number, number, number, string, string | null]>(
      'INSERT INTO enrollment_tokens (id, token_hash, seats, created_at, expires_at, created_by, note) VALUES (?, ?, ?, ?, ?, ?, ?)',
    ),
    tokenById: db.prepare<[string], TokenRow>('SELECT * FROM enrollment_tokens WHERE id = ?'),
    tokenByHash: db.prepare<[string], TokenRow>('SELECT * FROM enrollment_tokens WHERE token_hash = ?'),
    tokenList: db.prepare<[], TokenRow>('SELECT * FROM enrollment_tokens ORDER BY created_at, id'),
    tokenRevoke: db.prepare<[number, string]>('UPDATE enrollment_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL'),
    tokenSpendSeat: db.prepare<[string]>('UPDATE enrollment_tokens SET used = used + 1 WHERE id = ? AND used < seats'),
    agentById: db.prepare<[string], AgentRow>('SELECT * FROM agents WHERE id = ?'),
    agentByMachine: db.prepare<[string], AgentRow>('SELECT * FROM agents WHERE machine_id = ?'),
    agentByCredential: db.prepare<[string], Pick<AgentRow, 'id' | 'machine_id' | 'credential_hash'>>('SELECT id, machine_id, credential_hash FROM agents WHERE credential_hash = ?'),
    agentInsert: db.prepare<[string, string, string, string, string, string, string, string, string, string, number, number, string]>(
      `INSERT INTO agents (id, machine_id, hostname, platform, arch, agent_version, daemon_version, credential_hash,
         service_token_enc, enrollment_token_id, enrolled_at, credential_issued_at, inventory_json)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    agentReenroll: db.prepare<[string, string, string, string, string, string, string, string, number, string, string]>(
      `UPDATE agents SET hostname = ?, platform = ?, arch = ?, agent_version = ?, daemon_version = ?, credential_hash = ?,
         service_token_enc = ?, enrollment_token_id = ?, credential_issued_at = ?, inventory_json = ? WHERE id = ?`,
    ),
    agentList: db.prepare<[string, number], AgentRow>('SELECT * FROM agents WHERE id > ? ORDER BY id LIMIT ?'),
    agentCount: db.prepare<[], { n: number }>('SELECT count(*) AS n FROM agents'),
    agentCheckin: db.prepare<[number, string, string, string, string | null, string | null, string]>(
      `UPDATE agents SET last_checkin_at = ?, agent_version = ?, daemon_version = ?, health_json = ?, update_json = ?,
         inventory_json = coalesce(?, inventory_json) WHERE id = ?`,
    ),
    commandInsert: db.prepare<[string, string, string, string | null, string | null, string, number]>(
      'INSERT INTO commands (id, agent_id, type, deployment_id, nonce_id, body_json, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
    ),
    commandById: db.prepare<[string], CommandRow>('SELECT * FROM commands WHERE id = ?'),
    commandsByAgent: db.prepare<[string], CommandRow>('SELECT * FROM commands WHERE agent_id = ? ORDER BY seq'),
    commandsUnacked: db.prepare<[string, number], CommandRow>('SELECT * FROM commands WHERE agent_id = ? AND acked_at IS NULL ORDER BY seq LIMIT ?'),
    commandAck: db.prepare<[number, string, string]>('UPDATE commands SET acked_at = ? WHERE id = ? AND agent_id = ? AND acked_at IS NULL'),
    commandResult: db.prepare<[string, string, number, number, string, string]>(
      'UPDATE commands SET outcome = ?, outcome_detail_json = ?, outcome_at = ?, acked_at = coalesce(acked_at, ?) WHERE id = ? AND agent_id = ?',
    ),
    commandDelivered: db.prepare<[number, string]>('UPDATE commands SET delivered_count = delivered_count + 1, last_delivered_at = ? WHERE id = ?'),
    nonceInsert: db.prepare<[string, string, string, string, string, string, string, string, number, string, number, number]>(
      `INSERT INTO nonces (id, agent_id, machine_id, command_id, deployment_id, artifact, from_version, to_version, rollback, token, issued_at, expires_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    nonceById: db.prepare<[string], NonceRow>('SELECT * FROM nonces WHERE id = ?'),
    // Single use: the WHERE makes consumption a compare-and-set, whatever raced before it.
    nonceConsume: db.prepare<[number, string, string, string, string]>(
      'UPDATE nonces SET consumed_at = ?, consumed_outcome = ?, reported_version = ? WHERE id = ? AND agent_id = ? AND consumed_at IS NULL',
    ),
    releaseInsert: db.prepare<[string, string, string, string, string, string, number, string, string, string, number, number, string, number, number | null, string]>(
      `INSERT OR IGNORE INTO releases (artifact, version, version_key, platform, channel, file_name, file_size, file_sha256, envelope_json,
         manifest_json, created_at, expires_at, state, registered_at, published_at, published_by)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    releaseGet: db.prepare<[string, string, string], ReleaseRow>('SELECT * FROM releases WHERE artifact = ? AND version_key = ? AND platform = ?'),
    // Few releases per artifact: one statement with optional filters is plenty.
    releaseList: db.prepare<[{ artifact: string; platform: string | null; channel: string | null; state: string | null }], ReleaseRow>(
      `SELECT * FROM releases WHERE artifact = @artifact AND (@platform IS NULL OR platform = @platform)
         AND (@channel IS NULL OR channel = @channel) AND (@state IS NULL OR state = @state) ORDER BY registered_at, version_key`,
    ),
    releasePublish: db.prepare<[number, string, string, string]>(
      "UPDATE releases SET state = 'published', published_at = ? WHERE artifact = ? AND version_key = ? AND platform = ? AND state = 'pending'",
    ),
    metaGet: db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?'),
    metaSet: db.prepare<[string, string]>('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value'),
  };
}

type Statements = ReturnType<typeof prepareStatements>;

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

export interface SqliteStoreOptions {
  /** Milliseconds to wait for a lock held by another connection (default 5000). */
  busyTimeoutMs?: number;
}

/**
 * The embedded {@link Store}: one SQLite file (WAL, foreign keys, migrations).
 *
 * @example
 * const store = SqliteStore.open(join(dir, 'manager.db'))
 */
export class SqliteStore implements Store {
  readonly kind = 'sqlite';
  readonly path: string;
  readonly #db: Database.Database;
  readonly #s: Statements;
  readonly #r: SqliteRollouts;
  #closed = false;
  readonly #liveness = new Map<string, LivenessParams>();
  #livenessTimer: NodeJS.Timeout | undefined;

  private constructor(path: string, db: Database.Database) {
    this.path = path;
    this.#db = db;
    this.#s = prepareStatements(db);
    this.#r = new SqliteRollouts(db);
  }

  /** Opens (creating if needed) the database at `path` and migrates it. `:memory:` works for tests. */
  static open(path: string, options: SqliteStoreOptions = {}): SqliteStore {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    const db = new Database(path);
    try {
      // Hashes and ciphertexts only, but still nobody else's business; the WAL inherits this mode.
      if (path !== ':memory:') chmodSync(path, 0o600);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.pragma('foreign_keys = ON');
      db.pragma(`busy_timeout = ${Math.trunc(options.busyTimeoutMs ?? 5000)}`);
      migrate(db);
    } catch (error) {
      db.close();
      throw error;
    }
    return new SqliteStore(path, db);
  }

  /** The migrations applied to this database, oldest first. */
  appliedMigrations(): number[] {
    return this.#db.prepare<[], { version: number }>('SELECT version FROM schema_migrations ORDER BY version').all().map((row) => row.version);
  }

  #notClosed(): void {
    if (this.#closed) throw new ManagerError('STORE_CLOSED', 'The store is closed: the manager is shutting down. Retry against the restarted manager.');
  }

  // Every call but the check-in hot path goes through here: buffered liveness is written first.
  #open(): void {
    this.#notClosed();
    this.#flushLiveness();
  }

  #flushLiveness(): void {
    if (this.#livenessTimer !== undefined) {
      clearTimeout(this.#livenessTimer);
      this.#livenessTimer = undefined;
    }
    if (this.#liveness.size === 0) return;
    const batch = [...this.#liveness.values()];
    this.#liveness.clear();
    this.#db.transaction(() => {
      for (const params of batch) this.#s.agentCheckin.run(...params);
    })();
  }

  #bufferLiveness(agentId: string, params: LivenessParams): void {
    this.#liveness.set(agentId, params);
    if (this.#liveness.size >= LIVENESS_FLUSH_COUNT) {
      this.#flushLiveness();
      return;
    }
    this.#livenessTimer ??= setTimeout(() => {
      this.#livenessTimer = undefined;
      try {
        this.#flushLiveness();
      } catch {
        // The batch is lost (liveness only); the next check-ins write it again.
      }
    }, LIVENESS_FLUSH_MS).unref();
  }

  // Runs `fn` in a transaction synced to disk before it returns (see the header comment).
  #durable<T>(fn: () => T): T {
    this.#open();
    this.#db.pragma('synchronous = FULL');
    try {
      return this.#db.transaction(fn).immediate();
    } finally {
      this.#db.pragma('synchronous = NORMAL');
    }
  }

  ping(): Promise<void> {
    this.#open();
    this.#s.ping.get();
    return Promise.resolve();
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#flushLiveness();
      this.#closed = true;
      // Fold the WAL back into the main file so a copy of manager.db alone is complete.
      try {
        this.#db.pragma('wal_checkpoint(TRUNCATE)');
      } finally {
        this.#db.close();
      }
    }
    return Promise.resolve();
  }

  // -- enrollment tokens

  createEnrollmentToken(token: NewEnrollmentToken): Promise<EnrollmentTokenRecord> {
    const id = token.tokenHash.slice(0, 16);
    const row = this.#durable(() => {
      this.#s.tokenInsert.run(id, token.tokenHash, token.seats, token.createdAt.getTime(), token.expiresAt.getTime(), token.createdBy, token.note ?? null);
      return this.#s.tokenById.get(id);
    });
    if (row === undefined) throw new Error('enrollment token vanished after insert');
    return Promise.resolve(tokenRecord(row));
  }

  listEnrollmentTokens(): Promise<EnrollmentTokenRecord[]> {
    this.#open();
    return Promise.resolve(this.#s.tokenList.all().map(tokenRecord));
  }

  revokeEnrollmentToken(id: string, at: Date): Promise<boolean> {
    return Promise.resolve(
      this.#durable(() => {
        if (this.#s.tokenById.get(id) === undefined) return false;
        this.#s.tokenRevoke.run(at.getTime(), id);
        return true;
      }),
    );
  }

  // -- agents

  enrollAgent(input: EnrollAgentInput): Promise<EnrollAgentResult> {
    return Promise.resolve(
      this.#durable((): EnrollAgentResult => {
        const tokenRow = this.#s.tokenByHash.get(input.tokenHash);
        const existing = this.#s.agentByMachine.get(input.machineId);
        const refuse = (reason: Extract<EnrollAgentResult, { ok: false }>['reason']): EnrollAgentResult => ({
          ok: false,
          reason,
          token: tokenRow === undefined ? undefined : tokenRecord(tokenRow),
          agentId: existing?.id,
        });
        if (tokenRow === undefined) return refuse('token_unknown');
        if (tokenRow.revoked_at !== null) return refuse('token_revoked');
        if (tokenRow.expires_at <= input.now.getTime()) return refuse('token_expired');
        if (existing !== undefined && !input.allowReenrollment) return refuse('already_enrolled');
        // Seats: a conditional increment, so two enrollments racing for the last seat cannot both win.
        if (this.#s.tokenSpendSeat.run(tokenRow.id).changes !== 1) return refuse('token_exhausted');
        const now = input.now.getTime();
        const inventory = JSON.stringify(input.inventory);
        let agentId: string;
        if (existing === undefined) {
          agentId = input.newAgentId;
          this.#s.agentInsert.run(
            agentId, input.machineId, input.hostname, input.platform, input.arch, input.agentVersion, input.daemonVersion,
            input.credentialHash, input.serviceTokenCiphertext, tokenRow.id, now, now, inventory,
          );
        } else {
          agentId = existing.id;
          this.#s.agentReenroll.run(
            input.hostname, input.platform, input.arch, input.agentVersion, input.daemonVersion, input.credentialHash,
            input.serviceTokenCiphertext, tokenRow.id, now, inventory, agentId,
          );
        }
        const agent = this.#s.agentById.get(agentId);
        const token = this.#s.tokenById.get(tokenRow.id);
        if (agent === undefined || token === undefined) throw new Error('enrollment rows vanished inside their transaction');
        return { ok: true, agent: agentRecord(agent), token: tokenRecord(token), reenrolled: existing !== undefined, previousCredentialHash: existing?.credential_hash };
      }),
    );
  }

  getAgent(agentId: string): Promise<AgentRecord | undefined> {
    this.#open();
    const row = this.#s.agentById.get(agentId);
    return Promise.resolve(row === undefined ? undefined : agentRecord(row));
  }

  getAgentByCredentialHash(credentialHash: string): Promise<AgentIdentity | undefined> {
    // The hot path: no flush (the credential columns are never in the liveness buffer).
    this.#notClosed();
    const row = this.#s.agentByCredential.get(credentialHash);
    return Promise.resolve(row === undefined ? undefined : { id: row.id, machineId: row.machine_id, credentialHash: row.credential_hash });
  }

  listAgents(options: ListAgentsOptions): Promise<AgentRecord[]> {
    this.#open();
    return Promise.resolve(this.#s.agentList.all(options.after ?? '', options.limit).map(agentRecord));
  }

  countAgents(): Promise<number> {
    this.#open();
    return Promise.resolve(this.#s.agentCount.get()?.n ?? 0);
  }

  // -- check-ins, commands, nonces

  recordCheckin(write: CheckinWrite): Promise<CheckinWriteResult> {
    const at = write.at.getTime();
    const liveness: LivenessParams = [
      at,
      write.agentVersion,
      write.daemonVersion,
      JSON.stringify(write.health),
      write.update === undefined ? null : JSON.stringify(write.update),
      write.inventory === undefined ? null : JSON.stringify(write.inventory),
      write.agentId,
    ];
    const apply = (): CheckinWriteResult => {
      this.#s.agentCheckin.run(...liveness);
      for (const commandId of write.acks) this.#s.commandAck.run(at, commandId, write.agentId);
      for (const result of write.results) {
        const consume = result.consumeNonce;
        if (consume !== undefined && this.#s.nonceConsume.run(at, result.outcome, consume.reportedVersion, consume.nonceId, write.agentId).changes !== 1) {
          // Throwing rolls the whole check-in back: a replayed completion changes nothing.
          throw new NonceReplayed(consume.nonceId, result.commandId);
        }
        this.#s.commandResult.run(result.outcome, JSON.stringify(result.detail), at, at, result.commandId, write.agentId);
      }
      const rows = this.#s.commandsUnacked.all(write.agentId, write.commandLimit);
      for (const row of rows) this.#s.commandDelivered.run(at, row.id);
      return { ok: true, commands: rows.map((row) => commandRecord({ ...row, delivered_count: row.delivered_count + 1, last_delivered_at: at })) };
    };
    try {
      // Acks and results must not be lost (see the header comment): synced before the answer.
      if (write.acks.length > 0 || write.results.length > 0) return Promise.resolve(this.#durable(apply));
      this.#notClosed();
      // The common check-in: liveness buffered, one indexed read for pending commands.
      if (this.#s.commandsUnacked.all(write.agentId, 1).length === 0) {
        this.#bufferLiveness(write.agentId, liveness);
        return Promise.resolve({ ok: true, commands: [] });
      }
      this.#flushLiveness();
      return Promise.resolve(this.#db.transaction(apply)());
    } catch (error) {
      if (error instanceof NonceReplayed) return Promise.resolve({ ok: false, reason: 'nonce_replayed', nonceId: error.nonceId, commandId: error.commandId });
      throw error;
    }
  }

  insertCommand(command: NewCommand, nonce?: NewNonce): Promise<void> {
    this.#durable(() => {
      this.#insertCommand(command, nonce);
    });
    return Promise.resolve();
  }

  #insertCommand(command: NewCommand, nonce: NewNonce | undefined): void {
    {
      this.#s.commandInsert.run(command.id, command.agentId, command.type, command.deploymentId ?? null, nonce?.id ?? null, JSON.stringify(command.body), command.createdAt.getTime());
      if (nonce !== undefined) {
        this.#s.nonceInsert.run(
          nonce.id, nonce.agentId, nonce.machineId, nonce.commandId, nonce.deploymentId, nonce.artifact, nonce.fromVersion, nonce.toVersion,
          nonce.rollback ? 1 : 0, nonce.token, nonce.issuedAt.getTime(), nonce.expiresAt.getTime(),
        );
      }
    }
  }

  getCommand(commandId: string): Promise<CommandRecord | undefined> {
    this.#open();
    const row = this.#s.commandById.get(commandId);
    return Promise.resolve(row === undefined ? undefined : commandRecord(row));
  }

  listCommands(agentId: string): Promise<CommandRecord[]> {
    this.#open();
    return Promise.resolve(this.#s.commandsByAgent.all(agentId).map(commandRecord));
  }

  getNonce(nonceId: string): Promise<NonceRecord | undefined> {
    this.#open();
    const row = this.#s.nonceById.get(nonceId);
    return Promise.resolve(row === undefined ? undefined : nonceRecord(row));
  }

  // -- releases

  insertRelease(release: NewRelease): Promise<'inserted' | 'exists'> {
    const changes = this.#durable(
      () =>
        this.#s.releaseInsert.run(
          release.artifact, release.version, release.versionKey, release.platform, release.channel, release.file.name, release.file.size,
          release.file.sha256, JSON.stringify(release.envelope), JSON.stringify(release.manifest), release.createdAt.getTime(),
          release.expiresAt.getTime(), release.state, release.registeredAt.getTime(), release.publishedAt?.getTime() ?? null, release.publishedBy,
        ).changes,
    );
    return Promise.resolve(changes === 1 ? 'inserted' : 'exists');
  }

  getRelease(artifact: string, versionKey: string, platform: string): Promise<ReleaseRecord | undefined> {
    this.#open();
    const row = this.#s.releaseGet.get(artifact, versionKey, platform);
    return Promise.resolve(row === undefined ? undefined : releaseRecord(row));
  }

  listReleases(query: ReleaseQuery): Promise<ReleaseRecord[]> {
    this.#open();
    const rows = this.#s.releaseList.all({ artifact: query.artifact, platform: query.platform ?? null, channel: query.channel ?? null, state: query.state ?? null });
    return Promise.resolve(rows.map(releaseRecord));
  }

  markReleasePublished(artifact: string, versionKey: string, platform: string, at: Date): Promise<boolean> {
    return Promise.resolve(this.#durable(() => this.#s.releasePublish.run(at.getTime(), artifact, versionKey, platform).changes === 1));
  }

  // -- meta

  getMeta(key: string): Promise<string | undefined> {
    this.#open();
    return Promise.resolve(this.#s.metaGet.get(key)?.value);
  }

  setMeta(key: string, value: string): Promise<void> {
    this.#durable(() => this.#s.metaSet.run(key, value));
    return Promise.resolve();
  }

  // -- rollouts

  setAgentRolloutSettings(agentId: string, settings: AgentRolloutSettings): Promise<boolean> {
    return Promise.resolve(this.#durable(() => this.#r.setSettings(agentId, settings)));
  }

  getAgentRolloutSettings(agentId: string): Promise<AgentRolloutSettings | undefined> {
    this.#open();
    return Promise.resolve(this.#r.getSettings(agentId));
  }

  listRolloutCandidates(): Promise<RolloutCandidate[]> {
    this.#open();
    return Promise.resolve(this.#r.candidates());
  }

  createDeployment(
    deployment: DeploymentRecord,
    targets: readonly TargetRecord[],
    events: readonly NewDeploymentEvent[],
    supersede: RolloutWrite[] = [],
  ): Promise<{ ok: true } | { ok: false; active: string }> {
    return Promise.resolve(
      this.#durable((): { ok: true } | { ok: false; active: string } => {
        for (const write of supersede) this.#r.write(write, (c, n) => {
          this.#insertCommand(c, n);
        });
        // One active deployment per artifact: checked and created in one transaction, so two notifies cannot both win.
        const active = this.#r.activeOf(deployment.artifact);
        if (active !== undefined) return { ok: false, active };
        this.#r.write({ deployment, targets, events }, (c, n) => {
          this.#insertCommand(c, n);
        });
        return { ok: true };
      }),
    );
  }

  getDeployment(id: string): Promise<DeploymentRecord | undefined> {
    this.#open();
    return Promise.resolve(this.#r.getDeployment(id));
  }

  listDeployments(options: { active?: boolean; open?: boolean; limit: number }): Promise<DeploymentRecord[]> {
    this.#open();
    return Promise.resolve(this.#r.listDeployments(options.active === true ? 'active' : options.open === true ? 'open' : 'all', options.limit));
  }

  writeRollout(write: RolloutWrite): Promise<void> {
    this.#durable(() => {
      this.#r.write(write, (c, n) => {
        this.#insertCommand(c, n);
      });
    });
    return Promise.resolve();
  }

  listTargets(deploymentId: string): Promise<TargetRecord[]> {
    this.#open();
    return Promise.resolve(this.#r.targets(deploymentId));
  }

  listTargetViews(deploymentId: string, options: { open?: boolean; phase?: number } = {}): Promise<TargetView[]> {
    this.#open();
    return Promise.resolve(this.#r.targetViews(deploymentId, options.open ?? false, options.phase));
  }

  countTargets(deploymentId: string): Promise<{ byState: TargetCounts; byPhase: TargetCounts[]; deferred: number }> {
    this.#open();
    return Promise.resolve(this.#r.counts(deploymentId));
  }

  listDeploymentEvents(deploymentId: string | undefined, afterSeq: number, limit: number, options: { latest?: boolean } = {}): Promise<DeploymentEventRecord[]> {
    this.#open();
    return Promise.resolve(this.#r.events(deploymentId, afterSeq, limit, options.latest ?? false));
  }
}
