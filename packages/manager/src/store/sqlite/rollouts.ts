import type Database from 'better-sqlite3';
import type { DeploymentStatusValue, DeploymentStrategy, JsonObject, RolloutTargetState } from '@drover/protocol';
import type {
  AgentRolloutSettings,
  DeploymentEventRecord,
  DeploymentRecord,
  PhaseState,
  RolloutCandidate,
  RolloutGroup,
  RolloutOptions,
  RolloutPhase,
  RolloutWrite,
  TargetCounts,
  TargetRecord,
  TargetRollbackState,
  TargetView,
} from '../../rollouts/records.js';
import { activeDeploymentStatuses } from '../../rollouts/records.js';
import type { NewCommand, NewNonce } from '../records.js';

// The rollout tables of the SQLite store (migration 2): SqliteStore delegates to this, inside its
// own transactions. A deployment or target is written whole (an upsert of every column): the
// engine holds the record it decided on, and the row becomes exactly that.

const ACTIVE_SQL = activeDeploymentStatuses.map((s) => `'${s}'`).join(', ');
const FINAL_TARGET_SQL = "('succeeded', 'failed', 'skipped', 'rolled_back')";

interface DeploymentRow {
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

interface TargetRow {
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

interface TargetViewRow extends TargetRow {
  agent_version: string;
  health_json: string | null;
  last_checkin_at: number | null;
  update_json: string | null;
  push_url: string | null;
  c_acked_at: number | null;
  c_outcome: string | null;
  c_detail: string | null;
  c_exists: number | null;
  r_acked_at: number | null;
  r_outcome: string | null;
  r_detail: string | null;
  r_exists: number | null;
}

interface EventRow {
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

function deploymentRecord(row: DeploymentRow): DeploymentRecord {
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

function targetRecord(row: TargetRow): TargetRecord {
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

function targetView(row: TargetViewRow): TargetView {
  return {
    ...targetRecord(row),
    agentVersion: row.agent_version,
    agentHealth: optJson(row.health_json),
    lastCheckinAt: optDate(row.last_checkin_at),
    agentUpdate: updateProgress(optJson(row.update_json)),
    pushUrl: row.push_url ?? undefined,
    command: row.c_exists === null ? undefined : { ackedAt: optDate(row.c_acked_at), outcome: row.c_outcome ?? undefined, detail: optJson(row.c_detail) },
    rollbackCommand: row.r_exists === null ? undefined : { ackedAt: optDate(row.r_acked_at), outcome: row.r_outcome ?? undefined, detail: optJson(row.r_detail) },
  };
}

function eventRecord(row: EventRow): DeploymentEventRecord {
  return { seq: row.seq, deploymentId: row.deployment_id, at: new Date(row.ts), type: row.event_type, message: row.message, details: optJson(row.details_json) };
}

const TARGET_VIEW_SQL = `
  SELECT t.*, a.agent_version, a.health_json, a.last_checkin_at, a.update_json, a.push_url,
    c.acked_at AS c_acked_at, c.outcome AS c_outcome, c.outcome_detail_json AS c_detail, c.seq AS c_exists,
    r.acked_at AS r_acked_at, r.outcome AS r_outcome, r.outcome_detail_json AS r_detail, r.seq AS r_exists
  FROM deployment_targets t
  JOIN agents a ON a.id = t.agent_id
  LEFT JOIN commands c ON c.id = t.command_id
  LEFT JOIN commands r ON r.id = t.rollback_command_id
  WHERE t.deployment_id = ?`;

/** The rollout statements, prepared once. */
export class SqliteRollouts {
  readonly #s;

  constructor(db: Database.Database) {
    this.#s = {
      setSettings: db.prepare<[string | null, string | null, string]>('UPDATE agents SET rollout_group = ?, push_url = ? WHERE id = ?'),
      getSettings: db.prepare<[string], { rollout_group: string | null; push_url: string | null }>('SELECT rollout_group, push_url FROM agents WHERE id = ?'),
      candidates: db.prepare<[], { id: string; platform: string; agent_version: string; daemon_version: string; rollout_group: string | null; push_url: string | null }>(
        'SELECT id, platform, agent_version, daemon_version, rollout_group, push_url FROM agents ORDER BY id',
      ),
      activeOf: db.prepare<[string], { id: string }>(`SELECT id FROM deployments WHERE artifact = ? AND status IN (${ACTIVE_SQL}) ORDER BY created_at LIMIT 1`),
      deploymentUpsert: db.prepare<[Record<string, unknown>]>(
        `INSERT INTO deployments (id, artifact, version, commit_sha, changelog, strategy, status, message, options_json, phases_json, notification_json,
           phase_index, phase_state, phase_started_at, soak_until, created_by, created_at, started_at, completed_at, updated_at)
         VALUES (@id, @artifact, @version, @commit_sha, @changelog, @strategy, @status, @message, @options_json, @phases_json, @notification_json,
           @phase_index, @phase_state, @phase_started_at, @soak_until, @created_by, @created_at, @started_at, @completed_at, @updated_at)
         ON CONFLICT (id) DO UPDATE SET status = excluded.status, message = excluded.message, phase_index = excluded.phase_index,
           phase_state = excluded.phase_state, phase_started_at = excluded.phase_started_at, soak_until = excluded.soak_until,
           started_at = excluded.started_at, completed_at = excluded.completed_at, updated_at = excluded.updated_at`,
      ),
      deploymentById: db.prepare<[string], DeploymentRow>('SELECT * FROM deployments WHERE id = ?'),
      deploymentsAll: db.prepare<[number], DeploymentRow>('SELECT * FROM deployments ORDER BY created_at DESC, id DESC LIMIT ?'),
      deploymentsOpen: db.prepare<[number], DeploymentRow>('SELECT * FROM deployments WHERE completed_at IS NULL ORDER BY created_at, id LIMIT ?'),
      deploymentsActive: db.prepare<[number], DeploymentRow>(`SELECT * FROM deployments WHERE status IN (${ACTIVE_SQL}) ORDER BY created_at DESC, id DESC LIMIT ?`),
      targetUpsert: db.prepare<[Record<string, unknown>]>(
        `INSERT INTO deployment_targets (deployment_id, agent_id, phase, state, mode, from_version, to_version, attempts, command_id, rollback_command_id,
           rollback_state, notified_at, deadline_at, deferred_count, first_deferred_at, deferred_until, healthy_since, last_probe_at, error_code, message, updated_at)
         VALUES (@deployment_id, @agent_id, @phase, @state, @mode, @from_version, @to_version, @attempts, @command_id, @rollback_command_id,
           @rollback_state, @notified_at, @deadline_at, @deferred_count, @first_deferred_at, @deferred_until, @healthy_since, @last_probe_at, @error_code, @message, @updated_at)
         ON CONFLICT (deployment_id, agent_id) DO UPDATE SET phase = excluded.phase, state = excluded.state, attempts = excluded.attempts,
           command_id = excluded.command_id, rollback_command_id = excluded.rollback_command_id, rollback_state = excluded.rollback_state,
           notified_at = excluded.notified_at, deadline_at = excluded.deadline_at, deferred_count = excluded.deferred_count,
           first_deferred_at = excluded.first_deferred_at, deferred_until = excluded.deferred_until, healthy_since = excluded.healthy_since,
           last_probe_at = excluded.last_probe_at, error_code = excluded.error_code, message = excluded.message, updated_at = excluded.updated_at`,
      ),
      targets: db.prepare<[string], TargetRow>('SELECT * FROM deployment_targets WHERE deployment_id = ? ORDER BY phase, agent_id'),
      targetViews: db.prepare<[string], TargetViewRow>(`${TARGET_VIEW_SQL} ORDER BY t.phase, t.agent_id`),
      targetViewsOpen: db.prepare<[string], TargetViewRow>(
        `${TARGET_VIEW_SQL} AND (t.state NOT IN ${FINAL_TARGET_SQL} OR t.rollback_state = 'queued') ORDER BY t.phase, t.agent_id`,
      ),
      targetViewsOpenPhase: db.prepare<[string, number], TargetViewRow>(
        `${TARGET_VIEW_SQL} AND ((t.state NOT IN ${FINAL_TARGET_SQL} AND (t.state != 'pending' OR t.phase = ?)) OR t.rollback_state = 'queued') ORDER BY t.phase, t.agent_id`,
      ),
      countByState: db.prepare<[string], { phase: number; state: string; n: number; deferred: number }>(
        'SELECT phase, state, count(*) AS n, sum(deferred_count > 0) AS deferred FROM deployment_targets WHERE deployment_id = ? GROUP BY phase, state',
      ),
      eventInsert: db.prepare<[string, number, string, string, string | null]>(
        'INSERT INTO deployment_events (deployment_id, ts, event_type, message, details_json) VALUES (?, ?, ?, ?, ?)',
      ),
      eventsOf: db.prepare<[string, number, number], EventRow>('SELECT * FROM deployment_events WHERE deployment_id = ? AND seq > ? ORDER BY seq LIMIT ?'),
      eventsLatest: db.prepare<[string, number], EventRow>('SELECT * FROM (SELECT * FROM deployment_events WHERE deployment_id = ? ORDER BY seq DESC LIMIT ?) ORDER BY seq'),
      eventsAll: db.prepare<[number, number], EventRow>('SELECT * FROM deployment_events WHERE seq > ? ORDER BY seq LIMIT ?'),
    };
  }

  setSettings(agentId: string, settings: AgentRolloutSettings): boolean {
    return this.#s.setSettings.run(settings.group ?? null, settings.pushUrl ?? null, agentId).changes === 1;
  }

  getSettings(agentId: string): AgentRolloutSettings | undefined {
    const row = this.#s.getSettings.get(agentId);
    return row === undefined ? undefined : { group: (row.rollout_group ?? undefined) as RolloutGroup | undefined, pushUrl: row.push_url ?? undefined };
  }

  candidates(): RolloutCandidate[] {
    return this.#s.candidates.all().map((row) => ({
      id: row.id,
      platform: row.platform,
      agentVersion: row.agent_version,
      daemonVersion: row.daemon_version,
      group: (row.rollout_group ?? undefined) as RolloutGroup | undefined,
      pushUrl: row.push_url ?? undefined,
    }));
  }

  activeOf(artifact: string): string | undefined {
    return this.#s.activeOf.get(artifact)?.id;
  }

  getDeployment(id: string): DeploymentRecord | undefined {
    const row = this.#s.deploymentById.get(id);
    return row === undefined ? undefined : deploymentRecord(row);
  }

  listDeployments(filter: 'active' | 'open' | 'all', limit: number): DeploymentRecord[] {
    const statement = filter === 'active' ? this.#s.deploymentsActive : filter === 'open' ? this.#s.deploymentsOpen : this.#s.deploymentsAll;
    return statement.all(limit).map(deploymentRecord);
  }

  /** Call inside a transaction. */
  write(write: RolloutWrite, insertCommand: (command: NewCommand, nonce: NewNonce) => void): void {
    const d = write.deployment;
    if (d !== undefined) {
      this.#s.deploymentUpsert.run({
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
      });
    }
    // Commands before targets: a target names its command, and both land in this one transaction.
    for (const { command, nonce } of write.commands ?? []) insertCommand(command, nonce);
    for (const t of write.targets ?? []) {
      this.#s.targetUpsert.run({
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
      });
    }
    for (const e of write.events ?? []) {
      this.#s.eventInsert.run(e.deploymentId, e.at.getTime(), e.type, e.message, e.details === undefined ? null : JSON.stringify(e.details));
    }
  }

  targets(deploymentId: string): TargetRecord[] {
    return this.#s.targets.all(deploymentId).map(targetRecord);
  }

  targetViews(deploymentId: string, open: boolean, phase: number | undefined): TargetView[] {
    if (open && phase !== undefined) return this.#s.targetViewsOpenPhase.all(deploymentId, phase).map(targetView);
    return (open ? this.#s.targetViewsOpen : this.#s.targetViews).all(deploymentId).map(targetView);
  }

  counts(deploymentId: string): { byState: TargetCounts; byPhase: TargetCounts[]; deferred: number } {
    const byState: TargetCounts = {};
    const byPhase: TargetCounts[] = [];
    let deferred = 0;
    for (const row of this.#s.countByState.all(deploymentId)) {
      const state = row.state as RolloutTargetState;
      byState[state] = (byState[state] ?? 0) + row.n;
      const phase = (byPhase[row.phase] ??= {});
      phase[state] = (phase[state] ?? 0) + row.n;
      deferred += row.deferred;
    }
    for (let i = 0; i < byPhase.length; i++) byPhase[i] ??= {};
    return { byState, byPhase, deferred };
  }

  events(deploymentId: string | undefined, afterSeq: number, limit: number, latest: boolean): DeploymentEventRecord[] {
    if (latest && deploymentId !== undefined) return this.#s.eventsLatest.all(deploymentId, limit).map(eventRecord);
    const rows = deploymentId === undefined ? this.#s.eventsAll.all(afterSeq, limit) : this.#s.eventsOf.all(deploymentId, afterSeq, limit);
    return rows.map(eventRecord);
  }
}

