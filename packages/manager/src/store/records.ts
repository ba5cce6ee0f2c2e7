import type { JsonObject } from '@drover/protocol';

// What the store keeps of enrollment tokens, agents, commands, nonces and releases, and the
// writes a check-in makes: plain records with Dates, the same whichever store implements them.
// The rollout records are in rollouts/records.ts; the Store interface that reads and writes all
// of them is store.ts. Secrets never reach the store in clear: credentials and enrollment tokens
// arrive hashed (secrets.ts), service tokens Fernet-encrypted.

/** An enrollment token as the store keeps it: its id and seats, never the token itself. */
export interface EnrollmentTokenRecord {
  /** The token's id: first 16 hex of its SHA-256 (what logs and the audit log show). */
  id: string;
  seats: number;
  /** Seats spent: successful enrollments, re-enrollments included. */
  used: number;
  createdAt: Date;
  expiresAt: Date;
  revokedAt: Date | undefined;
  /** Who created it: `operator:<tokenId>`, `cli:init`, ... */
  createdBy: string;
  note: string | undefined;
}

/** An enrollment token to create ({@link Store.createEnrollmentToken}): the token arrives hashed. */
export interface NewEnrollmentToken {
  /** Hex SHA-256 of the token. */
  tokenHash: string;
  seats: number;
  createdAt: Date;
  expiresAt: Date;
  createdBy: string;
  note?: string | undefined;
}

/** An enrolled agent (one host): its identity, versions, credential hash and last check-in. */
export interface AgentRecord {
  id: string;
  /** Lowercase hex SHA-256 of the host's machine id: the agent is bound to it. */
  machineId: string;
  hostname: string;
  platform: string;
  arch: string;
  agentVersion: string;
  daemonVersion: string;
  /** Hex SHA-256 of the credential. */
  credentialHash: string;
  /** The agent's service token, Fernet-encrypted. */
  serviceTokenCiphertext: string;
  enrollmentTokenId: string | undefined;
  enrolledAt: Date;
  /** When the current credential was issued (enrollment or re-enrollment). */
  credentialIssuedAt: Date;
  lastCheckinAt: Date | undefined;
  /** The daemon's last health report (AgentHealthReport). */
  health: JsonObject | undefined;
  /** The update the daemon last said it was carrying out (UpdateProgress). */
  update: JsonObject | undefined;
  inventory: JsonObject;
  /** When an operator removed the host (`drover agents remove`): its credential is refused from then on. */
  revokedAt: Date | undefined;
}

/** What authenticating a credential needs: the check-in hot path reads only this. */
export type AgentIdentity = Pick<AgentRecord, 'id' | 'machineId' | 'credentialHash' | 'revokedAt'> & {
  /** The hash matched the agent's pending credential (rotated, not used before): the first use promotes it. */
  pending: boolean;
};

/** One enrollment to apply atomically ({@link Store.enrollAgent}): spend a seat, then enroll or re-enroll the machine. */
export interface EnrollAgentInput {
  tokenHash: string;
  now: Date;
  /** The id a new agent gets; ignored when the machine is already enrolled (it keeps its id). */
  newAgentId: string;
  machineId: string;
  hostname: string;
  platform: string;
  arch: string;
  agentVersion: string;
  daemonVersion: string;
  inventory: JsonObject;
  credentialHash: string;
  serviceTokenCiphertext: string;
  /** When false, a machine already enrolled is refused (`already_enrolled`) instead of re-enrolled. */
  allowReenrollment: boolean;
}

/**
 * One agent brought in from another manager's registry (`drover agents import`, decision 0036): a
 * push-mode agent with no daemon, so no enrollment token and a credential nobody holds.
 */
export type ImportAgentInput = Pick<AgentRecord, 'id' | 'hostname' | 'platform' | 'arch' | 'agentVersion' | 'daemonVersion' | 'serviceTokenCiphertext'> & {
  /** A stand-in machine id derived from the agent id: no host checks in as it. */
  machineId: string;
  /** Hash of a random secret handed to nobody: the agent has no daemon to present a credential. */
  credentialHash: string;
  pushUrl: string;
  group: 'explorer' | 'early_adopter' | 'general' | undefined;
};

/** What {@link Store.importAgents} did: every agent imported, or none because these ids (or machines) exist. */
export type ImportAgentsResult = { ok: true; agents: AgentRecord[] } | { ok: false; taken: string[] };

/** Why {@link Store.enrollAgent} refused an enrollment, each a refusal the manager answers with its own code. */
export type EnrollRefusal = 'token_unknown' | 'token_expired' | 'token_exhausted' | 'token_revoked' | 'already_enrolled';

/** What {@link Store.enrollAgent} did: the agent enrolled (or re-enrolled), or why it refused. */
export type EnrollAgentResult =
  | {
      ok: true;
      agent: AgentRecord;
      token: EnrollmentTokenRecord;
      /** True when this machine was enrolled before: it kept its id, its credential was rotated. */
      reenrolled: boolean;
      /** The replaced credential's hash, on re-enrollment. */
      previousCredentialHash: string | undefined;
    }
  | { ok: false; reason: EnrollRefusal; token: EnrollmentTokenRecord | undefined; agentId: string | undefined };

/** A command queued for an agent, re-sent on every check-in until acked, with the outcome the daemon reported. */
export interface CommandRecord {
  id: string;
  agentId: string;
  type: string;
  deploymentId: string | undefined;
  nonceId: string | undefined;
  /** The command exactly as sent to the daemon. */
  body: JsonObject;
  createdAt: Date;
  deliveredCount: number;
  lastDeliveredAt: Date | undefined;
  ackedAt: Date | undefined;
  /** The last outcome the daemon reported (`deferred` is progress, the others are final). */
  outcome: string | undefined;
  outcomeDetail: JsonObject | undefined;
  outcomeAt: Date | undefined;
}

/** A command to queue ({@link Store.insertCommand}). */
export interface NewCommand {
  id: string;
  agentId: string;
  type: string;
  deploymentId?: string | undefined;
  body: JsonObject;
  createdAt: Date;
}

/** An update nonce the manager issued: single use, consumed when the daemon reports the update's outcome. */
export interface NonceRecord {
  id: string;
  agentId: string;
  machineId: string;
  commandId: string;
  deploymentId: string;
  artifact: string;
  fromVersion: string;
  toVersion: string;
  rollback: boolean;
  /** The compact token as issued. Not a secret (it only authorises what the command already says). */
  token: string;
  issuedAt: Date;
  expiresAt: Date;
  consumedAt: Date | undefined;
  consumedOutcome: string | undefined;
  reportedVersion: string | undefined;
}

/** A nonce to record as it is issued, with its command ({@link Store.insertCommand}). */
export type NewNonce = Omit<NonceRecord, 'consumedAt' | 'consumedOutcome' | 'reportedVersion'>;

/** One command result a check-in reports, and the nonce it consumes when it completes an update. */
export interface CheckinResultWrite {
  commandId: string;
  outcome: string;
  detail: JsonObject;
  /** Set when the result completes an update: the nonce is consumed, once. */
  consumeNonce?: { nonceId: string; reportedVersion: string } | undefined;
}

/** Everything one check-in writes, applied atomically ({@link Store.recordCheckin}). */
export interface CheckinWrite {
  agentId: string;
  /** Audit records of this check-in, committed with it. */
  audit?: readonly PendingAuditRecord[] | undefined;
  at: Date;
  agentVersion: string;
  daemonVersion: string;
  health: JsonObject;
  update: JsonObject | undefined;
  /** Replaces the stored inventory when given. */
  inventory: JsonObject | undefined;
  acks: readonly string[];
  results: readonly CheckinResultWrite[];
  /** At most this many unacked commands come back (oldest first). */
  commandLimit: number;
}

/** What {@link Store.recordCheckin} did: the commands still unacked, or the replayed nonce that stopped it. */
export type CheckinWriteResult =
  | { ok: true; commands: CommandRecord[] }
  /** A nonce was consumed by someone else first: nothing of the check-in was written. */
  | { ok: false; reason: 'nonce_replayed'; nonceId: string; commandId: string };

/** A release is `pending` from its envelope's registration until its artifact is uploaded and verified. */
export type ReleaseState = 'pending' | 'published';

/** A release in the catalog: its signed envelope, decoded manifest and artifact file, per artifact, version and platform. */
export interface ReleaseRecord {
  artifact: string;
  /** The version as the manifest states it. */
  version: string;
  /** The version normalised for lookups (`v1.2.3` and `1.2.3` are one release). */
  versionKey: string;
  platform: string;
  channel: string;
  file: { name: string; size: number; sha256: string };
  /** The DSSE envelope exactly as published. */
  envelope: JsonObject;
  /** The verified payload, decoded. */
  manifest: JsonObject;
  createdAt: Date;
  expiresAt: Date;
  /** `pending` until the artifact's bytes are uploaded and verified. */
  state: ReleaseState;
  registeredAt: Date;
  publishedAt: Date | undefined;
  /** Who published it: `operator:<tokenId>` or `deploy:<tokenId>`. */
  publishedBy: string;
}

/** A release to insert ({@link Store.insertRelease}). */
export type NewRelease = Omit<ReleaseRecord, 'publishedAt'> & { publishedAt?: Date | undefined };

/** Which releases {@link Store.listReleases} returns. */
export interface ReleaseQuery {
  artifact: string;
  platform?: string | undefined;
  channel?: string | undefined;
  state?: ReleaseState | undefined;
}

/** What the fleet listing shows of an agent beyond its record ({@link Store.listFleetDetails}). */
export interface FleetDetails {
  /** The agent. */
  agentId: string;
  /** Its canary group (`drover agents set-group`), if any. */
  group: string | undefined;
  /** Its oldest unacked command: the next one its daemon carries out. */
  pendingCommand: CommandRecord | undefined;
}

/** Which agents {@link Store.listAgents} and {@link Store.countAgents} take: each field given narrows, all must hold. */
export interface AgentFilter {
  /** A case-insensitive substring of the agent id, machine id, hostname, agent version or daemon version (taken literally: `%` and `_` are not wildcards). */
  q?: string | undefined;
  /** Its canary group. */
  group?: 'explorer' | 'early_adopter' | 'general' | undefined;
  /** Its agent version, exactly. */
  version?: string | undefined;
  /** The status of its last health report (`healthy`, `degraded`, `starting`). */
  health?: string | undefined;
}

/** A page of agents ({@link Store.listAgents}), in id order, of those the filter takes. */
export interface ListAgentsOptions extends AgentFilter {
  limit: number;
  /** Page after this agent id (ids sort as text). */
  after?: string | undefined;
}

/**
 * An audit record waiting in the store's outbox: written in the same transaction as the change it
 * describes, moved into the hash-chained log afterwards (audit/trail.ts). `body` is the canonical
 * JSON of the entry with its `ts`, checked before the transaction, so the log can always take it.
 */
export interface PendingAuditRecord {
  body: string;
}

/** A row of the audit outbox, oldest first by `id`. */
export interface AuditOutboxRow extends PendingAuditRecord {
  id: number;
}

/** What proves a write comes from the current holder of a lease (decision 0038). */
export interface LeaseFence {
  name: string;
  /** The lease's token when it was taken: a later holder's is larger. */
  token: number;
}

/** How to take a lease (`Store.lease`). */
export interface LeaseOptions {
  /** Wait for the holder to let go (up to `waitMs`), instead of answering undefined at once. */
  wait: boolean;
  /** Milliseconds to wait when `wait` is true (default 15,000); then LEASE_BUSY. */
  waitMs?: number | undefined;
  /** Who takes it, for the lease row and logs (e.g. `host:pid`). */
  holder: string;
}

/** A lease held: work one manager does at a time across the managers sharing a store. */
export interface Lease extends LeaseFence {
  /** True once the store no longer holds it for this manager (connection lost, ended by the server). */
  readonly lost: boolean;
  /** Lets go; idempotent, never rejects. */
  release(): Promise<void>;
}

/** One record of the audit chain kept in the store (PostgreSQL: one chain for every replica, decision 0038). */
export interface AuditChainLine {
  seq: number;
  /** The record's line as `drover audit verify` reads it, without its newline. */
  line: string;
}

/**
 * Chains outbox rows: given the chain's last line (undefined while it is empty) and the rows in
 * outbox order, answers one line per row, in order, and the new head (JSON `{"seq","hash"}`).
 */
export type AuditChainBuilder = (last: string | undefined, rows: readonly AuditOutboxRow[]) => Promise<{ lines: AuditChainLine[]; head: string }>;
