import type { JsonObject } from '@drover/protocol';
import type { AgentRecord, CommandRecord, EnrollAgentInput, EnrollAgentResult, EnrollRefusal, EnrollmentTokenRecord, FleetDetails, NonceRecord, ReleaseRecord } from './records.js';

// The rows of the tables of migration 1 (enrollment tokens, agents, commands, nonces, releases) as
// both stores read them, and their mapping to the store's records: times are integers
// (milliseconds since the epoch), JSON is text, an absent value is NULL. SQLite returns exactly
// this; the PostgreSQL store reads bigint as numbers and maps its boolean `rollback` itself.

export interface TokenRow {
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

export interface AgentRow {
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
  revoked_at: number | null;
  pending_credential_hash: string | null;
}

export interface CommandRow {
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

export interface NonceRow {
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

export interface ReleaseRow {
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

export function tokenRecord(row: TokenRow): EnrollmentTokenRecord {
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

export function agentRecord(row: AgentRow): AgentRecord {
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
    revokedAt: optionalDate(row.revoked_at),
  };
}

/** The fleet listing's details from an agents query (id, rollout_group) and its oldest unacked commands. */
export function fleetDetails(agents: readonly { id: string; rollout_group: string | null }[], pending: readonly CommandRow[]): FleetDetails[] {
  const commands = new Map(pending.map((row) => [row.agent_id, commandRecord(row)]));
  return agents.map((agent) => ({ agentId: agent.id, group: agent.rollout_group ?? undefined, pendingCommand: commands.get(agent.id) }));
}

export function commandRecord(row: CommandRow): CommandRecord {
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

export function nonceRecord(row: NonceRow): NonceRecord {
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

export function releaseRecord(row: ReleaseRow): ReleaseRecord {
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

/** Why an enrollment with a known token is refused before a seat is spent (revoked, expired, already enrolled), or undefined. */
export function enrollRefusal(input: EnrollAgentInput, tokenRow: TokenRow, existing: AgentRow | undefined): EnrollRefusal | undefined {
  if (tokenRow.revoked_at !== null) return 'token_revoked';
  if (tokenRow.expires_at <= input.now.getTime()) return 'token_expired';
  if (existing !== undefined && !input.allowReenrollment) return 'already_enrolled';
  return undefined;
}

/** The result of a refused enrollment: the token and the machine's agent, when known. */
export function enrollRefused(reason: EnrollRefusal, tokenRow: TokenRow | undefined, existing: AgentRow | undefined): EnrollAgentResult {
  return { ok: false, reason, token: tokenRow === undefined ? undefined : tokenRecord(tokenRow), agentId: existing?.id };
}
