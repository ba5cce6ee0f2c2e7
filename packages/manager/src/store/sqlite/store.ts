import { chmodSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { ManagerError } from '../../errors.js';
import { agentFilterWhere } from '../agent-filter.js';
import type { FilterDialect } from '../agent-filter.js';
import { LivenessBuffer, livenessParams } from './liveness-buffer.js';
import type { LivenessParams } from './liveness-buffer.js';
import { migrate } from './migrate.js';
import { SqliteRollouts } from './rollouts.js';
import { agentRecord, commandRecord, enrollRefusal, enrollRefused, fleetDetails, nonceRecord, releaseRecord, tokenRecord } from '../rows.js';
import type { AgentRow, CommandRow, NonceRow, ReleaseRow, TokenRow } from '../rows.js';
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
import type {
  AgentIdentity,
  AgentRecord,
  AuditOutboxRow,
  CheckinWrite,
  CheckinWriteResult,
  CommandRecord,
  EnrollAgentInput,
  ImportAgentInput,
  ImportAgentsResult,
  EnrollAgentResult,
  EnrollmentTokenRecord,
  Lease,
  FleetDetails,
  AgentFilter,
  ListAgentsOptions,
  NewCommand,
  NewEnrollmentToken,
  NewNonce,
  NewRelease,
  NonceRecord,
  PendingAuditRecord,
  ReleaseQuery,
  ReleaseRecord,
} from '../records.js';
import { DeploymentActive, NonceReplayed, replayedCheckin } from '../refusals.js';
import type { Store } from '../store.js';

// The embedded store: one SQLite file through better-sqlite3.
//
// - WAL: readers never block the writer, and a commit appends to the WAL instead of rewriting pages.
// - synchronous=NORMAL by default: a commit does not fsync, the WAL is synced at checkpoints. A
//   power loss can drop the last commits but never corrupts the file. That is the right price for
//   a check-in that only refreshes liveness and health (the daemon says it all again next time).
//   Writes whose loss would matter (an enrollment, a spent seat, a consumed nonce, an ack, a
//   queued command, a release) run in `durable()`, with synchronous=FULL: synced before they return.
// - the plain check-in (no acks, no results) only refreshes liveness and health: those writes wait
//   in a buffer (liveness-buffer.ts) and are written in one transaction every 50 ms, or sooner
//   when many are waiting. Any other call writes the buffer out first, so no reader ever sees
//   stale state, and close() writes it out too.
// - foreign keys on; every statement prepared once. Rows map to records in rows.ts (rollout-rows.ts
//   for the rollout tables); migrations.ts is the schema, migrate.ts applies it.


// The fleet listing's filter (agent-filter.ts) in SQLite: positional placeholders, JSON read by json_extract.
const sqliteFilter: FilterDialect = { placeholder: () => '?', healthStatus: "json_extract(health_json, '$.status')" };
const IDENTITIES_MAX = 65_536; // agents' identities cached by credential hash (see SqliteStore#identities)
const GROUP_MAX = 512; // check-ins committed together at most (see SqliteStore#commitCheckins)

// Every statement the store runs, prepared once when it opens (the fleet listing's filtered ones on first use).
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
    // The current credential or a pending one (decision 0032): two indexed lookups.
    agentByCredential: db.prepare<[string, string], Pick<AgentRow, 'id' | 'machine_id' | 'credential_hash' | 'revoked_at'> & { pending: number }>(
      `SELECT id, machine_id, credential_hash, revoked_at, 0 AS pending FROM agents WHERE credential_hash = ?
       UNION ALL SELECT id, machine_id, pending_credential_hash AS credential_hash, revoked_at, 1 AS pending FROM agents WHERE pending_credential_hash = ?`,
    ),
    agentSetPending: db.prepare<[string, string, string]>('UPDATE agents SET pending_credential_hash = ? WHERE id = ? AND credential_hash = ? AND revoked_at IS NULL'),
    agentPromote: db.prepare<[number, string, string]>(
      'UPDATE agents SET credential_hash = pending_credential_hash, pending_credential_hash = NULL, credential_issued_at = ? WHERE id = ? AND pending_credential_hash = ? AND revoked_at IS NULL',
    ),
    agentRevoke: db.prepare<[number, string]>('UPDATE agents SET revoked_at = ?, pending_credential_hash = NULL WHERE id = ? AND revoked_at IS NULL'),
    agentInsert: db.prepare<[string, string, string, string, string, string, string, string, string, string | null, number, number, string]>(
      `INSERT INTO agents (id, machine_id, hostname, platform, arch, agent_version, daemon_version, credential_hash,
         service_token_enc, enrollment_token_id, enrolled_at, credential_issued_at, inventory_json)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    agentReenroll: db.prepare<[string, string, string, string, string, string, string, string, number, string, string]>(
      `UPDATE agents SET hostname = ?, platform = ?, arch = ?, agent_version = ?, daemon_version = ?, credential_hash = ?,
         service_token_enc = ?, enrollment_token_id = ?, credential_issued_at = ?, inventory_json = ?, revoked_at = NULL, pending_credential_hash = NULL WHERE id = ?`,
    ),
    agentGroups: db.prepare<[string], { id: string; rollout_group: string | null }>('SELECT id, rollout_group FROM agents WHERE id IN (SELECT value FROM json_each(?))'),
    // The oldest unacked command of each agent (commands_unacked serves it).
    pendingCommands: db.prepare<[string], CommandRow>(
      'SELECT c.* FROM commands c WHERE c.acked_at IS NULL AND c.agent_id IN (SELECT value FROM json_each(?)) AND c.seq = (SELECT min(seq) FROM commands WHERE agent_id = c.agent_id AND acked_at IS NULL)',
    ),
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
    commandWithdraw: db.prepare<[number, number, string]>("UPDATE commands SET acked_at = ?, outcome = 'withdrawn', outcome_at = ? WHERE id = ? AND acked_at IS NULL AND delivered_count = 0"),
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
    auditInsert: db.prepare<[string]>('INSERT INTO audit_outbox (body) VALUES (?)'),
    auditList: db.prepare<[number], AuditOutboxRow>('SELECT id, body FROM audit_outbox ORDER BY id LIMIT ?'),
    auditDelete: db.prepare<[number]>('DELETE FROM audit_outbox WHERE id = ?'),
    metaGet: db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?'),
    metaSet: db.prepare<[string, string]>('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value'),
  };
}

type Statements = ReturnType<typeof prepareStatements>;

export interface SqliteStoreOptions {
  /** Milliseconds to wait for a lock held by another connection (default 5000). */
  busyTimeoutMs?: number;
}

/**
 * The embedded {@link Store}: one SQLite file (WAL, foreign keys, migrations).
 *
 * @example
 * ```ts
 * const store = SqliteStore.open(join(dir, 'manager.db'))
 * ```
 */
export class SqliteStore implements Store {
  readonly kind = 'sqlite';
  readonly path: string;
  readonly #db: Database.Database;
  readonly #filterStatements = new Map<string, Database.Statement>();
  readonly #s: Statements;
  readonly #r: SqliteRollouts;
  #closed = false;
  readonly #leaseTokens = new Map<string, number>();
  // Agents given a command in the transaction under way, and who hears of them once it commits.
  #commandsFor: string[] = [];
  // Agents that may have an unacked command: a superset (inserting a command adds its agent, even in
  // a transaction that rolls back; a check-in that finds none removes it), so that the plain
  // check-in of every other agent reads nothing at all. An autocommit read costs 10-20 us in WAL
  // mode, most of a check-in's time in this store (bench/checkin.ts). Only this process writes the
  // file (its pid file sees to that), so every insert passes through #insertCommand.
  readonly #mayHaveCommands: Set<string>;
  // Agents' identities by credential hash, as getAgentByCredentialHash answered them (found ones
  // only, at most IDENTITIES_MAX). Every durable write empties it unless it says it changes no
  // agent's id, machine, credential or revocation (#durable's `identities`), so a revoked or
  // rotated credential is refused from the write on; a read saved is 10-15 us per check-in.
  readonly #identities = new Map<string, AgentIdentity>();
  // Durable check-ins (acks, results) read in one turn of the event loop, committed together (see
  // #commitCheckins); undefined when none waits.
  #checkins: { apply: () => CheckinWriteResult; resolve: (result: CheckinWriteResult) => void; reject: (error: unknown) => void }[] | undefined;
  readonly #commandWatchers = new Set<(agentIds: readonly string[] | 'all') => void>();
  readonly #liveness: LivenessBuffer<LivenessParams>;

  private constructor(path: string, db: Database.Database) {
    this.path = path;
    this.#db = db;
    this.#s = prepareStatements(db);
    this.#r = new SqliteRollouts(db);
    this.#mayHaveCommands = new Set(db.prepare<[], { agent_id: string }>('SELECT DISTINCT agent_id FROM commands WHERE acked_at IS NULL').all().map((row) => row.agent_id));
    this.#liveness = new LivenessBuffer((batch) => {
      this.#db.transaction(() => {
        for (const params of batch) this.#s.agentCheckin.run(...params);
      })();
    });
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
    this.#liveness.flush();
  }

  // Runs `fn` in a transaction synced to disk before it returns (see the header comment).
  // `identities: 'kept'`: `fn` changes no agent's identity (see #identities), which stay cached.
  #durable<T>(fn: () => T, identities: 'changed' | 'kept' = 'changed'): T {
    this.#open();
    if (identities === 'changed') this.#identities.clear();
    this.#db.pragma('synchronous = FULL');
    this.#commandsFor = [];
    try {
      const result = this.#db.transaction(fn).immediate();
      // Committed: whoever waits for these agents' commands looks again (the command channel).
      const agentIds = this.#commandsFor;
      if (agentIds.length > 0) for (const listener of this.#commandWatchers) listener(agentIds);
      return result;
    } finally {
      this.#commandsFor = [];
      this.#db.pragma('synchronous = NORMAL');
    }
  }

  watchCommands(listener: (agentIds: readonly string[] | 'all') => void): () => void {
    this.#commandWatchers.add(listener);
    return () => {
      this.#commandWatchers.delete(listener);
    };
  }

  // Inside a transaction: the change's audit records go to the outbox with it.
  #audit(audit: readonly PendingAuditRecord[] | undefined): void {
    for (const record of audit ?? []) this.#s.auditInsert.run(record.body);
  }

  ping(): Promise<void> {
    this.#open();
    this.#s.ping.get();
    return Promise.resolve();
  }

  close(): Promise<void> {
    if (!this.#closed) {
      while (this.#checkins !== undefined) this.#commitCheckins();
      this.#liveness.flush();
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

  createEnrollmentToken(token: NewEnrollmentToken, audit?: readonly PendingAuditRecord[]): Promise<EnrollmentTokenRecord> {
    const id = token.tokenHash.slice(0, 16);
    const row = this.#durable(() => {
      this.#s.tokenInsert.run(id, token.tokenHash, token.seats, token.createdAt.getTime(), token.expiresAt.getTime(), token.createdBy, token.note ?? null);
      this.#audit(audit);
      return this.#s.tokenById.get(id);
    });
    if (row === undefined) throw new Error('enrollment token vanished after insert');
    return Promise.resolve(tokenRecord(row));
  }

  listEnrollmentTokens(): Promise<EnrollmentTokenRecord[]> {
    this.#open();
    return Promise.resolve(this.#s.tokenList.all().map(tokenRecord));
  }

  revokeEnrollmentToken(id: string, at: Date, audit?: readonly PendingAuditRecord[]): Promise<boolean> {
    return Promise.resolve(
      this.#durable(() => {
        if (this.#s.tokenById.get(id) === undefined) return false;
        this.#s.tokenRevoke.run(at.getTime(), id);
        this.#audit(audit);
        return true;
      }),
    );
  }

  // -- agents

  enrollAgent(input: EnrollAgentInput, audit?: (enrolled: Extract<EnrollAgentResult, { ok: true }>) => readonly PendingAuditRecord[]): Promise<EnrollAgentResult> {
    return Promise.resolve(
      this.#durable((): EnrollAgentResult => {
        const tokenRow = this.#s.tokenByHash.get(input.tokenHash);
        const existing = this.#s.agentByMachine.get(input.machineId);
        if (tokenRow === undefined) return enrollRefused('token_unknown', undefined, existing);
        const refusal = enrollRefusal(input, tokenRow, existing);
        if (refusal !== undefined) return enrollRefused(refusal, tokenRow, existing);
        // Seats: a conditional increment, so two enrollments racing for the last seat cannot both win.
        if (this.#s.tokenSpendSeat.run(tokenRow.id).changes !== 1) return enrollRefused('token_exhausted', tokenRow, existing);
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
        const enrolled = { ok: true as const, agent: agentRecord(agent), token: tokenRecord(token), reenrolled: existing !== undefined, previousCredentialHash: existing?.credential_hash };
        if (audit !== undefined) this.#audit(audit(enrolled));
        return enrolled;
      }),
    );
  }

  importAgents(agents: readonly ImportAgentInput[], now: Date, audit?: readonly PendingAuditRecord[]): Promise<ImportAgentsResult> {
    return Promise.resolve(
      this.#durable((): ImportAgentsResult => {
        // All or nothing: any id or machine already here and nothing is written.
        const taken = agents.filter((a) => this.#s.agentById.get(a.id) !== undefined || this.#s.agentByMachine.get(a.machineId) !== undefined).map((a) => a.id);
        if (taken.length > 0) return { ok: false, taken };
        const at = now.getTime();
        const imported: AgentRecord[] = [];
        for (const a of agents) {
          this.#s.agentInsert.run(a.id, a.machineId, a.hostname, a.platform, a.arch, a.agentVersion, a.daemonVersion, a.credentialHash, a.serviceTokenCiphertext, null, at, at, '{}');
          this.#r.setSettings(a.id, { group: a.group, pushUrl: a.pushUrl });
          const row = this.#s.agentById.get(a.id);
          if (row === undefined) throw new Error('an imported agent vanished inside its transaction');
          imported.push(agentRecord(row));
        }
        this.#audit(audit);
        return { ok: true, agents: imported };
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
    const cached = this.#identities.get(credentialHash);
    if (cached !== undefined) return Promise.resolve({ ...cached });
    const row = this.#s.agentByCredential.get(credentialHash, credentialHash);
    if (row === undefined) return Promise.resolve(undefined);
    const identity = { id: row.id, machineId: row.machine_id, credentialHash: row.credential_hash, revokedAt: row.revoked_at === null ? undefined : new Date(row.revoked_at), pending: row.pending === 1 };
    if (this.#identities.size >= IDENTITIES_MAX) this.#identities.clear();
    this.#identities.set(credentialHash, identity);
    return Promise.resolve({ ...identity });
  }

  setPendingCredential(agentId: string, currentHash: string, pendingHash: string, audit?: readonly PendingAuditRecord[]): Promise<boolean> {
    return Promise.resolve(
      this.#durable(() => {
        if (this.#s.agentSetPending.run(pendingHash, agentId, currentHash).changes !== 1) return false;
        this.#audit(audit);
        return true;
      }),
    );
  }

  promoteCredential(agentId: string, pendingHash: string, at: Date, audit?: readonly PendingAuditRecord[]): Promise<boolean> {
    return Promise.resolve(
      this.#durable(() => {
        if (this.#s.agentPromote.run(at.getTime(), agentId, pendingHash).changes !== 1) return false;
        this.#audit(audit);
        return true;
      }),
    );
  }

  revokeAgent(agentId: string, at: Date, audit?: readonly PendingAuditRecord[]): Promise<'revoked' | 'already' | 'not_found'> {
    return Promise.resolve(
      this.#durable(() => {
        const row = this.#s.agentById.get(agentId);
        if (row === undefined) return 'not_found' as const;
        if (row.revoked_at !== null) return 'already' as const;
        this.#s.agentRevoke.run(at.getTime(), agentId);
        this.#audit(audit);
        return 'revoked' as const;
      }),
    );
  }

  listAgents(options: ListAgentsOptions): Promise<AgentRecord[]> {
    this.#open();
    const where = agentFilterWhere(options, sqliteFilter);
    const rows = this.#filtered<AgentRow>(`SELECT * FROM agents WHERE id > ? AND ${where.sql} ORDER BY id LIMIT ?`).all(options.after ?? '', ...where.params, options.limit);
    return Promise.resolve(rows.map(agentRecord));
  }

  // A filtered listing's statement, prepared once per shape of filter (at most 16 of them).
  #filtered<Row>(sql: string): Database.Statement<unknown[], Row> {
    let statement = this.#filterStatements.get(sql);
    if (statement === undefined) {
      statement = this.#db.prepare(sql);
      this.#filterStatements.set(sql, statement);
    }
    return statement as Database.Statement<unknown[], Row>;
  }

  listFleetDetails(agentIds: readonly string[]): Promise<FleetDetails[]> {
    this.#open();
    const ids = JSON.stringify(agentIds);
    return Promise.resolve(fleetDetails(this.#s.agentGroups.all(ids), this.#s.pendingCommands.all(ids)));
  }

  countAgents(filter: AgentFilter = {}): Promise<number> {
    this.#open();
    const where = agentFilterWhere(filter, sqliteFilter);
    return Promise.resolve(this.#filtered<{ n: number }>(`SELECT count(*) AS n FROM agents WHERE ${where.sql}`).get(...where.params)?.n ?? 0);
  }

  // -- check-ins, commands, nonces

  recordCheckin(write: CheckinWrite): Promise<CheckinWriteResult> {
    const at = write.at.getTime();
    const liveness = livenessParams(write);
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
      this.#audit(write.audit);
      const rows = this.#s.commandsUnacked.all(write.agentId, write.commandLimit);
      for (const row of rows) this.#s.commandDelivered.run(at, row.id);
      return { ok: true, commands: rows.map((row) => commandRecord({ ...row, delivered_count: row.delivered_count + 1, last_delivered_at: at })) };
    };
    const answered = (result: CheckinWriteResult): Promise<CheckinWriteResult> => {
      if (result.ok && result.commands.length === 0 && write.commandLimit > 0) this.#mayHaveCommands.delete(write.agentId);
      return Promise.resolve(result);
    };
    // Acks and results must not be lost (see the header comment): synced before the answer, in a
    // commit shared with the other check-ins of this turn.
    if (write.acks.length > 0 || write.results.length > 0 || (write.audit?.length ?? 0) > 0) {
      return this.#groupCheckin(apply).then(answered, replayedCheckin);
    }
    // No results from here on, so no nonce to replay.
    this.#notClosed();
    // The common check-in: liveness buffered, and no read at all unless the agent may have a command.
    if (!this.#mayHaveCommands.has(write.agentId) || this.#s.commandsUnacked.all(write.agentId, 1).length === 0) {
      this.#mayHaveCommands.delete(write.agentId);
      this.#liveness.add(write.agentId, liveness);
      return Promise.resolve({ ok: true, commands: [] });
    }
    // Its commands are marked delivered in the turn's shared commit: when a rollout's phase starts,
    // thousands of held check-ins wake in one turn, and one transaction each took seconds.
    return this.#groupCheckin(apply).then(answered);
  }

  // Group commit: the durable check-ins read in one turn of the event loop (a rollout's phase
  // reports thousands within a second), and those that take commands, share one transaction and
  // one fsync, committed at the end of the turn. Each runs in a savepoint of its own, so one refused (a replayed nonce) or failing
  // rolls back alone; each is answered only after the shared commit, as durable as its own was.
  #groupCheckin(apply: () => CheckinWriteResult): Promise<CheckinWriteResult> {
    return new Promise((resolve, reject) => {
      if (this.#checkins === undefined) {
        this.#checkins = [];
        setImmediate(() => {
          this.#commitCheckins();
        });
      }
      this.#checkins.push({ apply, resolve, reject });
    });
  }

  #commitCheckins(): void {
    const waiting = this.#checkins;
    this.#checkins = undefined;
    if (waiting === undefined || waiting.length === 0) return;
    // At most GROUP_MAX per commit, the rest in the next turn: the event loop (timers, admission,
    // new connections) is never held for long by one burst.
    const group = waiting.length > GROUP_MAX ? waiting.slice(0, GROUP_MAX) : waiting;
    if (waiting.length > GROUP_MAX) {
      this.#checkins = waiting.slice(GROUP_MAX);
      setImmediate(() => {
        this.#commitCheckins();
      });
    }
    const outcomes: ({ ok: true; result: CheckinWriteResult } | { ok: false; error: unknown })[] = [];
    try {
      this.#durable(() => {
        for (const { apply } of group) {
          try {
            outcomes.push({ ok: true, result: this.#db.transaction(apply)() });
          } catch (error) {
            outcomes.push({ ok: false, error });
          }
        }
      }, 'kept');
    } catch (error) {
      for (const { reject } of group) reject(error);
      return;
    }
    group.forEach(({ resolve, reject }, i) => {
      const outcome = outcomes[i];
      if (outcome?.ok === true) resolve(outcome.result);
      else reject(outcome?.error ?? new Error('a grouped check-in has no outcome'));
    });
  }

  insertCommand(command: NewCommand, nonce?: NewNonce, audit?: readonly PendingAuditRecord[]): Promise<void> {
    this.#durable(() => {
      this.#insertCommand(command, nonce);
      this.#audit(audit);
    }, 'kept');
    return Promise.resolve();
  }

  #insertCommand(command: NewCommand, nonce: NewNonce | undefined): void {
    this.#commandsFor.push(command.agentId);
    this.#mayHaveCommands.add(command.agentId);
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

  insertRelease(release: NewRelease, audit?: readonly PendingAuditRecord[]): Promise<'inserted' | 'exists'> {
    const changes = this.#durable(() => {
      const inserted = this.#s.releaseInsert.run(
        release.artifact, release.version, release.versionKey, release.platform, release.channel, release.file.name, release.file.size,
        release.file.sha256, JSON.stringify(release.envelope), JSON.stringify(release.manifest), release.createdAt.getTime(),
        release.expiresAt.getTime(), release.state, release.registeredAt.getTime(), release.publishedAt?.getTime() ?? null, release.publishedBy,
      ).changes;
      if (inserted === 1) this.#audit(audit);
      return inserted;
    });
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

  markReleasePublished(artifact: string, versionKey: string, platform: string, at: Date, audit?: readonly PendingAuditRecord[]): Promise<boolean> {
    return Promise.resolve(
      this.#durable(() => {
        const published = this.#s.releasePublish.run(at.getTime(), artifact, versionKey, platform).changes === 1;
        if (published) this.#audit(audit);
        return published;
      }),
    );
  }

  // -- the audit outbox

  appendAudit(audit: readonly PendingAuditRecord[]): Promise<void> {
    this.#durable(() => {
      this.#audit(audit);
    }, 'kept');
    return Promise.resolve();
  }

  listAuditOutbox(limit: number): Promise<AuditOutboxRow[]> {
    this.#open();
    return Promise.resolve(this.#s.auditList.all(limit));
  }

  completeAuditOutbox(ids: readonly number[], headKey: string, head: string): Promise<void> {
    this.#durable(() => {
      for (const id of ids) this.#s.auditDelete.run(id);
      this.#s.metaSet.run(headKey, head);
    }, 'kept');
    return Promise.resolve();
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

  setAgentRolloutSettings(agentId: string, settings: AgentRolloutSettings, audit?: readonly PendingAuditRecord[]): Promise<boolean> {
    return Promise.resolve(
      this.#durable(() => {
        const set = this.#r.setSettings(agentId, settings);
        if (set) this.#audit(audit);
        return set;
      }),
    );
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
    audit?: readonly PendingAuditRecord[],
  ): Promise<{ ok: true } | { ok: false; active: string }> {
    try {
      this.#durable(() => {
        for (const write of supersede) this.#writeRollout(write);
        // One active deployment per artifact: checked and created in one transaction, so two notifies cannot both win.
        const active = this.#r.activeOf(deployment.artifact);
        // Throwing rolls back the superseding too: nothing of a refused deployment stays.
        if (active !== undefined) throw new DeploymentActive(active);
        this.#writeRollout({ deployment, targets, events, audit });
      }, 'kept');
    } catch (error) {
      if (error instanceof DeploymentActive) return Promise.resolve({ ok: false, active: error.active });
      throw error;
    }
    return Promise.resolve({ ok: true });
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
      this.#writeRollout(write);
    }, 'kept');
    return Promise.resolve();
  }

  /** Call inside a transaction. */
  #writeRollout(write: RolloutWrite): void {
    this.#r.write(
      write,
      (c, n) => {
        this.#insertCommand(c, n);
      },
      (id, at) => this.#s.commandWithdraw.run(at.getTime(), at.getTime(), id).changes === 1,
    );
    this.#audit(write.audit);
  }

  listTargets(deploymentId: string): Promise<TargetRecord[]> {
    this.#open();
    return Promise.resolve(this.#r.targets(deploymentId));
  }

  listTargetViews(deploymentId: string, options: { open?: boolean; phase?: number; pendingLimit?: number } = {}): Promise<TargetView[]> {
    this.#open();
    return Promise.resolve(this.#r.targetViews(deploymentId, options.open ?? false, options.phase, options.pendingLimit));
  }

  countTargets(deploymentId: string): Promise<{ byState: TargetCounts; byPhase: TargetCounts[]; deferred: number }> {
    this.#open();
    return Promise.resolve(this.#r.counts(deploymentId));
  }

  listDeploymentEvents(deploymentId: string | undefined, afterSeq: number, limit: number, options: { latest?: boolean } = {}): Promise<DeploymentEventRecord[]> {
    this.#open();
    return Promise.resolve(this.#r.events(deploymentId, afterSeq, limit, options.latest ?? false));
  }

  // -- leases: one manager per SQLite file (its pid file sees to that), so a lease is this
  // process's own; the rollout engine already runs its steps one at a time (decision 0038).

  lease(name: string): Promise<Lease | undefined> {
    this.#open();
    const token = (this.#leaseTokens.get(name) ?? 0) + 1;
    this.#leaseTokens.set(name, token);
    return Promise.resolve({ name, token, lost: false, release: () => Promise.resolve() });
  }
}
