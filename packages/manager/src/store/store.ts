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
} from '../rollouts/records.js';
import type {
  AgentFilter,
  AgentIdentity,
  AgentRecord,
  AuditChainBuilder,
  AuditChainLine,
  AuditOutboxRow,
  CheckinWrite,
  CheckinWriteResult,
  CommandRecord,
  EnrollAgentInput,
  EnrollAgentResult,
  EnrollmentTokenRecord,
  FleetDetails,
  ImportAgentInput,
  ImportAgentsResult,
  Lease,
  LeaseFence,
  LeaseOptions,
  ListAgentsOptions,
  NewCommand,
  NewEnrollmentToken,
  NewNonce,
  NewRelease,
  NonceRecord,
  PendingAuditRecord,
  ReleaseQuery,
  ReleaseRecord,
} from './records.js';

// The manager's persistent state behind one interface: SQLite (store/sqlite/) is the embedded
// default; a PostgreSQL store backs several managers (decision 0038). Every method is one atomic step
// (one transaction), so no caller ever holds a transaction open across an await: the check-in
// that acks commands, records results and consumes nonces commits all of it or nothing. The
// records it reads and writes are in records.ts (agents, commands, releases...) and
// rollouts/records.ts (deployments, targets, events).
//
// A change and its audit record commit together: every mutating method takes the change's audit
// records (`audit`, already canonical: audit/trail.ts) and writes them to the audit outbox in the
// same transaction, only when the change is made; AuditTrail moves them into the hash chain.
//
// Secrets never reach the store in clear: credentials and enrollment tokens arrive hashed
// (secrets.ts), service tokens Fernet-encrypted.

/**
 * The manager's persistent state: agents, enrollment tokens, commands, nonces, releases,
 * deployments. Each method is one atomic step (one transaction), so a store shared by several
 * managers (PostgreSQL) stays consistent. SQLite under the manager's directory is the default;
 * give `ManagerOptions.store` to use another. Secrets never reach it in clear: credentials and
 * enrollment tokens arrive hashed, service tokens Fernet-encrypted.
 */
export interface Store {
  /** What backs the store, for logs and /readyz: `sqlite`, `postgres`, ... */
  readonly kind: string;
  /** Throws when the store cannot serve requests (for /readyz). */
  ping(): Promise<void>;
  close(): Promise<void>;

  // Enrollment tokens
  createEnrollmentToken(token: NewEnrollmentToken, audit?: readonly PendingAuditRecord[]): Promise<EnrollmentTokenRecord>;
  listEnrollmentTokens(): Promise<EnrollmentTokenRecord[]>;
  /** Revokes a token by id; false when no such token exists. */
  revokeEnrollmentToken(id: string, at: Date, audit?: readonly PendingAuditRecord[]): Promise<boolean>;

  // Agents
  /** Spends a seat of the token and enrolls (or re-enrolls) the machine, atomically; `audit` is written only when it enrolls. */
  enrollAgent(input: EnrollAgentInput, audit?: (enrolled: Extract<EnrollAgentResult, { ok: true }>) => readonly PendingAuditRecord[]): Promise<EnrollAgentResult>;
  /** Inserts every agent with its push URL and group, or none when any id or machine id exists; `audit` is written only when all are. */
  importAgents(agents: readonly ImportAgentInput[], now: Date, audit?: readonly PendingAuditRecord[]): Promise<ImportAgentsResult>;
  getAgent(agentId: string): Promise<AgentRecord | undefined>;
  /** The agent a credential (by its hash) belongs to: an indexed lookup of three columns, on every check-in. */
  getAgentByCredentialHash(credentialHash: string): Promise<AgentIdentity | undefined>;
  /**
   * Removes a host (`drover agents remove`): its credential is refused from then on, it is no
   * rollout's candidate, and its open rollout targets are skipped. The row stays (history, audit);
   * a later enrollment of the machine, with a new enrollment token, clears it. `already` changes
   * nothing and writes no audit record.
   */
  revokeAgent(agentId: string, at: Date, audit?: readonly PendingAuditRecord[]): Promise<'revoked' | 'already' | 'not_found'>;
  /**
   * Credential rotation (decision 0032), step 1: stores the hash of a new credential beside the
   * current one, replacing any earlier pending one; both are accepted until the new one is used.
   * False (and no change) unless `currentHash` is still the agent's credential and it is not removed.
   */
  setPendingCredential(agentId: string, currentHash: string, pendingHash: string, audit?: readonly PendingAuditRecord[]): Promise<boolean>;
  /**
   * Step 2, at the pending credential's first use: it becomes the credential, the old one stops
   * working. False (and no change) when `pendingHash` is no longer pending (promoted meanwhile).
   */
  promoteCredential(agentId: string, pendingHash: string, at: Date, audit?: readonly PendingAuditRecord[]): Promise<boolean>;
  listAgents(options: ListAgentsOptions): Promise<AgentRecord[]>;
  /** The canary group and pending command of each of these agents (a page of the fleet), in one read; unknown ids are left out. */
  listFleetDetails(agentIds: readonly string[]): Promise<FleetDetails[]>;
  /** How many agents the filter takes (all of them without one). */
  countAgents(filter?: AgentFilter): Promise<number>;

  // Check-ins, commands, nonces
  /** Applies one check-in (state, acks, results, nonce consumption) and returns the commands still unacked. */
  recordCheckin(write: CheckinWrite): Promise<CheckinWriteResult>;
  /** Queues a command, with the update nonce issued for it, atomically. */
  insertCommand(command: NewCommand, nonce?: NewNonce, audit?: readonly PendingAuditRecord[]): Promise<void>;
  getCommand(commandId: string): Promise<CommandRecord | undefined>;
  listCommands(agentId: string): Promise<CommandRecord[]>;
  getNonce(nonceId: string): Promise<NonceRecord | undefined>;

  // Releases
  /** Inserts a release; `exists` (and no change) when one with the same artifact, version and platform is stored. */
  insertRelease(release: NewRelease, audit?: readonly PendingAuditRecord[]): Promise<'inserted' | 'exists'>;
  getRelease(artifact: string, versionKey: string, platform: string): Promise<ReleaseRecord | undefined>;
  listReleases(query: ReleaseQuery): Promise<ReleaseRecord[]>;
  /** Marks a pending release published; false when it is not pending. */
  markReleasePublished(artifact: string, versionKey: string, platform: string, at: Date, audit?: readonly PendingAuditRecord[]): Promise<boolean>;

  // The audit outbox (audit/trail.ts)
  /** Writes audit records that come with no change (a refusal, a token's use), durably. */
  appendAudit(audit: readonly PendingAuditRecord[]): Promise<void>;
  /** The oldest `limit` records waiting for the log. */
  listAuditOutbox(limit: number): Promise<AuditOutboxRow[]>;
  /** Removes records now in the log and stores the log's new head under `headKey`, in one transaction. */
  completeAuditOutbox(ids: readonly number[], headKey: string, head: string): Promise<void>;

  /**
   * Present on a store several managers share (PostgreSQL): the audit chain is kept in it, one for
   * every replica (decision 0038). Moves up to `limit` outbox rows into the chain in one
   * transaction, appends serialized across managers: `build` chains them after the last line, and
   * the new head is stored under `headKey`. Answers how many rows moved.
   */
  chainAuditOutbox?(limit: number, build: AuditChainBuilder, headKey: string): Promise<number>;
  /** The chain's lines after `afterSeq`, oldest first; with `latest`, the last `limit` lines (below seq `before`) instead. */
  readAuditChain?(afterSeq: number, limit: number, options?: { latest?: boolean; before?: number }): Promise<AuditChainLine[]>;
  /**
   * Fills an empty chain with a log kept in a file so far (a manager moved to this store), in one
   * transaction; answers false, writing nothing, when the chain already has records.
   */
  importAuditChain?(lines: AsyncIterable<AuditChainLine>, headKey: string, head: string): Promise<boolean>;

  // Small key/value state of the manager itself (e.g. the audit chain head).
  getMeta(key: string): Promise<string | undefined>;
  setMeta(key: string, value: string): Promise<void>;

  // Rollouts (rollouts/records.ts)
  /** Sets an agent's canary group and push URL; false when no such agent exists. */
  setAgentRolloutSettings(agentId: string, settings: AgentRolloutSettings, audit?: readonly PendingAuditRecord[]): Promise<boolean>;
  getAgentRolloutSettings(agentId: string): Promise<AgentRolloutSettings | undefined>;
  /** Every enrolled agent, as a new deployment picks its targets. */
  listRolloutCandidates(): Promise<RolloutCandidate[]>;
  /**
   * Creates a deployment with its targets and first events, unless another deployment of the same
   * artifact is active (`active` names it); `supersede` lists active deployments to cancel first,
   * with the records (cancelled) and events to write for them, all in the same transaction.
   */
  createDeployment(
    deployment: DeploymentRecord,
    targets: readonly TargetRecord[],
    events: readonly NewDeploymentEvent[],
    supersede?: RolloutWrite[],
    audit?: readonly PendingAuditRecord[],
    fence?: LeaseFence,
  ): Promise<{ ok: true } | { ok: false; active: string }>;
  getDeployment(id: string): Promise<DeploymentRecord | undefined>;
  /** Newest first; `active` keeps only pending, in_progress, paused and rolling_back ones; `open` those not completed yet (targets still moving). */
  listDeployments(options: { active?: boolean; open?: boolean; limit: number }): Promise<DeploymentRecord[]>;
  /** Writes one engine step atomically (see RolloutWrite); with `write.fence`, only while that lease is still current (else LEASE_LOST, nothing written). */
  writeRollout(write: RolloutWrite): Promise<void>;
  listTargets(deploymentId: string): Promise<TargetRecord[]>;
  /**
   * Targets with their agent and commands; `open` keeps those not in a final state or with a rollback under way,
   * and, with `phase`, only the pending ones of that phase (the engine's per-tick read stays small in a big fleet),
   * and with `pendingLimit` too, only the first that many of those by agent id.
   */
  listTargetViews(deploymentId: string, options?: { open?: boolean; phase?: number; pendingLimit?: number }): Promise<TargetView[]>;
  countTargets(deploymentId: string): Promise<{ byState: TargetCounts; byPhase: TargetCounts[]; deferred: number }>;
  /** Events after `afterSeq`, oldest first; with `latest`, the last `limit` events instead (still oldest first). */
  listDeploymentEvents(deploymentId: string | undefined, afterSeq: number, limit: number, options?: { latest?: boolean }): Promise<DeploymentEventRecord[]>;

  /**
   * Calls `listener` with the agents given a command, once the transaction writing it committed,
   * whichever manager sharing the store wrote it ('all': notices may have been missed, look again
   * for everyone). A hint for the command channel (decision 0041), never the commands themselves.
   * Answers the function that stops the calls.
   */
  watchCommands(listener: (agentIds: readonly string[] | 'all') => void): () => void;

  // Leases (decision 0038)
  /**
   * Takes the lease `name`, held until `release()`: one manager at a time among those sharing the
   * store. A manager that dies lets go of it at once (PostgreSQL: its session ends); one that stalls
   * loses it after a bound, and a write fenced with an older token is refused. Answers undefined
   * when another manager holds it and `wait` is false. Each take increases the lease's token.
   */
  lease(name: string, options: LeaseOptions): Promise<Lease | undefined>;
}
