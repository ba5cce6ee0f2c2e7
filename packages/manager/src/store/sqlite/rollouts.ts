import type Database from 'better-sqlite3';
import type {
  AgentRolloutSettings,
  DeploymentEventRecord,
  DeploymentRecord,
  RolloutCandidate,
  RolloutGroup,
  RolloutWrite,
  TargetCounts,
  TargetRecord,
  TargetView,
} from '../../rollouts/records.js';
import type { NewCommand, NewNonce } from '../records.js';
import { ACTIVE_SQL, FINAL_TARGET_SQL, boundedTargetViewsSql, candidateRecord, deploymentRecord, deploymentRow, eventRecord, targetRecord, targetRow, targetCounts, targetView, targetViewSql } from '../rollout-rows.js';
import type { CandidateRow, DeploymentRow, EventRow, TargetCountRow, TargetRow, TargetViewRow } from '../rollout-rows.js';

// The rollout tables of the SQLite store (migration 2): SqliteStore delegates to this, inside its
// own transactions. A deployment or target is written whole (an upsert of every column): the
// engine holds the record it decided on, and the row becomes exactly that (rollout-rows.ts).

const TARGET_VIEW_SQL = targetViewSql('?');

/** The rollout statements, prepared once. */
export class SqliteRollouts {
  readonly #s;

  constructor(db: Database.Database) {
    this.#s = {
      setSettings: db.prepare<[string | null, string | null, string]>('UPDATE agents SET rollout_group = ?, push_url = ? WHERE id = ?'),
      getSettings: db.prepare<[string], { rollout_group: string | null; push_url: string | null }>('SELECT rollout_group, push_url FROM agents WHERE id = ?'),
      candidates: db.prepare<[], CandidateRow>(
        'SELECT id, platform, agent_version, daemon_version, rollout_group, push_url FROM agents WHERE revoked_at IS NULL ORDER BY id',
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
      targetViewsOpenPhaseBounded: db.prepare<[string, string, number, number], TargetViewRow>(boundedTargetViewsSql('?', '?', '?')),
      countByState: db.prepare<[string], TargetCountRow>(
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
    return this.#s.candidates.all().map(candidateRecord);
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
  write(write: RolloutWrite, insertCommand: (command: NewCommand, nonce: NewNonce) => void, withdrawCommand: (commandId: string, at: Date) => boolean): void {
    const d = write.deployment;
    if (d !== undefined) {
      this.#s.deploymentUpsert.run(deploymentRow(d));
    }
    // Commands before targets: a target names its command, and both land in this one transaction.
    for (const { command, nonce } of write.commands ?? []) insertCommand(command, nonce);
    for (const t of write.targets ?? []) {
      this.#s.targetUpsert.run(targetRow(t));
    }
    for (const { commandId, target } of write.withdraw ?? []) {
      if (withdrawCommand(commandId, target.updatedAt)) this.#s.targetUpsert.run(targetRow(target));
    }
    for (const e of write.events ?? []) {
      this.#s.eventInsert.run(e.deploymentId, e.at.getTime(), e.type, e.message, e.details === undefined ? null : JSON.stringify(e.details));
    }
  }

  targets(deploymentId: string): TargetRecord[] {
    return this.#s.targets.all(deploymentId).map(targetRecord);
  }

  targetViews(deploymentId: string, open: boolean, phase: number | undefined, pendingLimit?: number): TargetView[] {
    if (open && phase !== undefined && pendingLimit !== undefined) return this.#s.targetViewsOpenPhaseBounded.all(deploymentId, deploymentId, phase, pendingLimit).map(targetView);
    if (open && phase !== undefined) return this.#s.targetViewsOpenPhase.all(deploymentId, phase).map(targetView);
    return (open ? this.#s.targetViewsOpen : this.#s.targetViews).all(deploymentId).map(targetView);
  }

  counts(deploymentId: string): { byState: TargetCounts; byPhase: TargetCounts[]; deferred: number } {
    return targetCounts(this.#s.countByState.iterate(deploymentId));
  }

  events(deploymentId: string | undefined, afterSeq: number, limit: number, latest: boolean): DeploymentEventRecord[] {
    if (latest && deploymentId !== undefined) return this.#s.eventsLatest.all(deploymentId, limit).map(eventRecord);
    const rows = deploymentId === undefined ? this.#s.eventsAll.all(afterSeq, limit) : this.#s.eventsOf.all(deploymentId, afterSeq, limit);
    return rows.map(eventRecord);
  }
}

