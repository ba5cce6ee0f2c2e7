import type { DeploymentStatusValue, DeploymentStrategy, JsonObject, RolloutTargetState } from '@drover/protocol';
import type {
  DeploymentEventRecord,
  DeploymentRecord,
  PhaseState,
  RolloutCandidate,
  RolloutGroup,
  RolloutOptions,
  RolloutPhase,
  TargetCounts,
  TargetRecord,
  TargetRollbackState,
  TargetView,
} from '../rollouts/records.js';
import { activeDeploymentStatuses } from '../rollouts/records.js';

// The rows of the rollout tables (migration 2: deployments, deployment_targets, deployment_events)
// as both stores read them, their mapping to the rollout records, both ways, and the SQL the two
// stores share for them. Times are integers (milliseconds since the epoch), JSON is text, an
// absent value is NULL.

/** The statuses of an active deployment, as an SQL list. */
export const ACTIVE_SQL = activeDeploymentStatuses.map((s) => `'${s}'`).join(', ');
/** The final target states, as an SQL list in parentheses. */
export const FINAL_TARGET_SQL = "('succeeded', 'failed', 'skipped', 'rolled_back')";

/**
 * The engine's per-tick read with a bound on pending targets: every open target that is not pending
 * (or has a rollback queued), and the first `limit` pending ones of `phase` by agent id, ordered by
 * phase and agent id as the unbounded read. The placeholders name the deployment id, the phase and
 * the limit (SQLite's `?` are bound in that order: id, id, phase, limit).
 */
export function boundedTargetViewsSql(deployment: string, phase: string, limit: string): string {
  return `SELECT * FROM (${targetViewSql(deployment)} AND ((t.state NOT IN ${FINAL_TARGET_SQL} AND t.state != 'pending') OR t.rollback_state = 'queued')) AS moving_targets
  UNION ALL
  SELECT * FROM (${targetViewSql(deployment)} AND t.state = 'pending' AND t.phase = ${phase} AND (t.rollback_state IS NULL OR t.rollback_state != 'queued') ORDER BY t.agent_id LIMIT ${limit}) AS pending_targets
  ORDER BY phase, agent_id`;
}

/** The targets of one deployment with their agent and commands (TargetViewRow); `deployment` is the placeholder of its id. */
export function targetViewSql(deployment: string): string {
  return `
  SELECT t.*, a.agent_version, a.health_json, a.last_checkin_at, a.update_json, a.push_url, a.revoked_at AS agent_revoked_at,
    c.acked_at AS c_acked_at, c.outcome AS c_outcome, c.outcome_detail_json AS c_detail, c.seq AS c_exists,
    r.acked_at AS r_acked_at, r.outcome AS r_outcome, r.outcome_detail_json AS r_detail, r.seq AS r_exists
  FROM deployment_targets t
  JOIN agents a ON a.id = t.agent_id
  LEFT JOIN commands c ON c.id = t.command_id
  LEFT JOIN commands r ON r.id = t.rollback_command_id
  WHERE t.deployment_id = ${deployment}`;
}

export interface DeploymentRow {
  id: string;
  artifact: string;
  version: string;
  commit_sha: string | null;
  changelog: string | null;
  strategy: string;
  status: string;
  message: string;
  options_json: string;
  phases_json: string;
  notification_json: string | null;
  phase_index: number;
  phase_state: string;
  phase_started_at: number | null;
  soak_until: number | null;
  created_by: string;
  created_at: number;
  started_at: number | null;
  completed_at: number | null;
  updated_at: number;
}

export interface TargetRow {
  deployment_id: string;
  agent_id: string;
  phase: number;
  state: string;
  mode: string;
  from_version: string | null;
  to_version: string;
  attempts: number;
  command_id: string | null;
  rollback_command_id: string | null;
  rollback_state: string | null;
  notified_at: number | null;
  deadline_at: number | null;
  deferred_count: number;
  first_deferred_at: number | null;
  deferred_until: number | null;
  healthy_since: number | null;
  last_probe_at: number | null;
  error_code: string | null;
  message: string | null;
  updated_at: number;
}

export interface TargetViewRow extends TargetRow {
  agent_version: string;
  health_json: string | null;
  last_checkin_at: number | null;
  update_json: string | null;
  push_url: string | null;
  agent_revoked_at: number | null;
  c_acked_at: number | null;
  c_outcome: string | null;
  c_detail: string | null;
  c_exists: number | null;
  r_acked_at: number | null;
  r_outcome: string | null;
  r_detail: string | null;
  r_exists: number | null;
}

export interface EventRow {
  seq: number;
  deployment_id: string;
  ts: number;
  event_type: string;
  message: string;
  details_json: string | null;
}

const ms = (date: Date | undefined): number | null => (date === undefined ? null : date.getTime());
const optDate = (value: number | null): Date | undefined => (value === null ? undefined : new Date(value));
const optJson = (text: string | null): JsonObject | undefined => (text === null ? undefined : (JSON.parse(text) as JsonObject));

export function deploymentRecord(row: DeploymentRow): DeploymentRecord {
  return {
    id: row.id,
    artifact: row.artifact === 'daemon' ? 'daemon' : 'agent',
    version: row.version,
    commitSha: row.commit_sha ?? undefined,
    changelog: row.changelog ?? undefined,
    strategy: row.strategy as DeploymentStrategy,
    status: row.status as DeploymentStatusValue,
    message: row.message,
    options: JSON.parse(row.options_json) as RolloutOptions,
    phases: JSON.parse(row.phases_json) as RolloutPhase[],
    notification: optJson(row.notification_json),
    phaseIndex: row.phase_index,
    phaseState: row.phase_state as PhaseState,
    phaseStartedAt: optDate(row.phase_started_at),
    soakUntil: optDate(row.soak_until),
    createdBy: row.created_by,
    createdAt: new Date(row.created_at),
    startedAt: optDate(row.started_at),
    completedAt: optDate(row.completed_at),
    updatedAt: new Date(row.updated_at),
  };
}

export function targetRecord(row: TargetRow): TargetRecord {
  return {
    deploymentId: row.deployment_id,
    agentId: row.agent_id,
    phase: row.phase,
    state: row.state as RolloutTargetState,
    mode: row.mode === 'push' ? 'push' : 'daemon',
    fromVersion: row.from_version ?? undefined,
    toVersion: row.to_version,
    attempts: row.attempts,
    commandId: row.command_id ?? undefined,
    rollbackCommandId: row.rollback_command_id ?? undefined,
    rollbackState: (row.rollback_state ?? undefined) as TargetRollbackState | undefined,
    notifiedAt: optDate(row.notified_at),
    deadlineAt: optDate(row.deadline_at),
    deferredCount: row.deferred_count,
    firstDeferredAt: optDate(row.first_deferred_at),
    deferredUntil: optDate(row.deferred_until),
    healthySince: optDate(row.healthy_since),
    lastProbeAt: optDate(row.last_probe_at),
    errorCode: row.error_code ?? undefined,
    message: row.message ?? undefined,
    updatedAt: new Date(row.updated_at),
  };
}

/** The daemon's reported update progress, when it has the shape check-in validated; else undefined. */
function updateProgress(update: JsonObject | undefined): TargetView['agentUpdate'] {
  const commandId = update?.['commandId'];
  const step = update?.['step'];
  return typeof commandId === 'string' && typeof step === 'string' ? { commandId, step } : undefined;
}

export function targetView(row: TargetViewRow): TargetView {
  return {
    ...targetRecord(row),
    agentVersion: row.agent_version,
    agentHealth: optJson(row.health_json),
    lastCheckinAt: optDate(row.last_checkin_at),
    agentUpdate: updateProgress(optJson(row.update_json)),
    pushUrl: row.push_url ?? undefined,
    agentRevoked: row.agent_revoked_at !== null,
    command: row.c_exists === null ? undefined : { ackedAt: optDate(row.c_acked_at), outcome: row.c_outcome ?? undefined, detail: optJson(row.c_detail) },
    rollbackCommand: row.r_exists === null ? undefined : { ackedAt: optDate(row.r_acked_at), outcome: row.r_outcome ?? undefined, detail: optJson(row.r_detail) },
  };
}

export function eventRecord(row: EventRow): DeploymentEventRecord {
  return { seq: row.seq, deploymentId: row.deployment_id, at: new Date(row.ts), type: row.event_type, message: row.message, details: optJson(row.details_json) };
}

/** The deployments row of a record: every column, as the upsert writes it. */
export function deploymentRow(d: DeploymentRecord): Record<string, unknown> {
  return {
    id: d.id,
    artifact: d.artifact,
    version: d.version,
    commit_sha: d.commitSha ?? null,
    changelog: d.changelog ?? null,
    strategy: d.strategy,
    status: d.status,
    message: d.message,
    options_json: JSON.stringify(d.options),
    phases_json: JSON.stringify(d.phases),
    notification_json: d.notification === undefined ? null : JSON.stringify(d.notification),
    phase_index: d.phaseIndex,
    phase_state: d.phaseState,
    phase_started_at: ms(d.phaseStartedAt),
    soak_until: ms(d.soakUntil),
    created_by: d.createdBy,
    created_at: d.createdAt.getTime(),
    started_at: ms(d.startedAt),
    completed_at: ms(d.completedAt),
    updated_at: d.updatedAt.getTime(),
  };
}

/** The deployment_targets row of a record: every column, as the upsert writes it. */
export function targetRow(t: TargetRecord): Record<string, unknown> {
  return {
    deployment_id: t.deploymentId,
    agent_id: t.agentId,
    phase: t.phase,
    state: t.state,
    mode: t.mode,
    from_version: t.fromVersion ?? null,
    to_version: t.toVersion,
    attempts: t.attempts,
    command_id: t.commandId ?? null,
    rollback_command_id: t.rollbackCommandId ?? null,
    rollback_state: t.rollbackState ?? null,
    notified_at: ms(t.notifiedAt),
    deadline_at: ms(t.deadlineAt),
    deferred_count: t.deferredCount,
    first_deferred_at: ms(t.firstDeferredAt),
    deferred_until: ms(t.deferredUntil),
    healthy_since: ms(t.healthySince),
    last_probe_at: ms(t.lastProbeAt),
    error_code: t.errorCode ?? null,
    message: t.message ?? null,
    updated_at: t.updatedAt.getTime(),
  };
}

/** A row of the target counts: targets of one phase in one state, and how many of them deferred. */
export interface TargetCountRow {
  phase: number;
  state: string;
  n: number;
  deferred: number;
}

/** The counts of Store.countTargets from the rows of its GROUP BY phase, state. */
export function targetCounts(rows: Iterable<TargetCountRow>): { byState: TargetCounts; byPhase: TargetCounts[]; deferred: number } {
  const byState: TargetCounts = {};
  const byPhase: TargetCounts[] = [];
  let deferred = 0;
  for (const row of rows) {
    const state = row.state as RolloutTargetState;
    byState[state] = (byState[state] ?? 0) + row.n;
    const phase = (byPhase[row.phase] ??= {});
    phase[state] = (phase[state] ?? 0) + row.n;
    deferred += row.deferred;
  }
  for (let i = 0; i < byPhase.length; i++) byPhase[i] ??= {};
  return { byState, byPhase, deferred };
}

/** An agent's row as a new deployment picks its targets. */
export interface CandidateRow {
  id: string;
  platform: string;
  agent_version: string;
  daemon_version: string;
  rollout_group: string | null;
  push_url: string | null;
}

export function candidateRecord(row: CandidateRow): RolloutCandidate {
  return {
    id: row.id,
    platform: row.platform,
    agentVersion: row.agent_version,
    daemonVersion: row.daemon_version,
    group: (row.rollout_group ?? undefined) as RolloutGroup | undefined,
    pushUrl: row.push_url ?? undefined,
  };
}
