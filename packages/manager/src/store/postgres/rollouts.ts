import type * as rollout from '../../rollouts/records.js';
import type { NewCommand, NewNonce } from '../records.js';
import { ACTIVE_SQL, FINAL_TARGET_SQL, boundedTargetViewsSql, candidateRecord, deploymentRecord, deploymentRow, eventRecord, targetRecord, targetRow, targetCounts, targetView, targetViewSql } from '../rollout-rows.js';
import type { CandidateRow, DeploymentRow, EventRow, TargetCountRow, TargetRow, TargetViewRow } from '../rollout-rows.js';
import { insertRows } from './connection.js';
import type { Queryable } from './connection.js';

// The rollout tables of the PostgreSQL store (migration 2), the same statements as the SQLite
// store's (sqlite/rollouts.ts) with PostgreSQL placeholders; rows map to records through the same
// mappers (sqlite/rollout-rows.ts). PostgresStore calls these inside its own transactions.

const TARGET_VIEW_SQL = targetViewSql('$1');

const DEPLOYMENT_UPDATED = ['status', 'message', 'phase_index', 'phase_state', 'phase_started_at', 'soak_until', 'started_at', 'completed_at', 'updated_at'];
const TARGET_UPDATED = [
  'phase', 'state', 'attempts', 'command_id', 'rollback_command_id', 'rollback_state', 'notified_at', 'deadline_at', 'deferred_count',
  'first_deferred_at', 'deferred_until', 'healthy_since', 'last_probe_at', 'error_code', 'message', 'updated_at',
];

const rows = async <T extends object>(db: Queryable, text: string, values: unknown[] = []): Promise<T[]> => (await db.query<T>(text, values)).rows;

export async function setSettings(db: Queryable, agentId: string, settings: rollout.AgentRolloutSettings): Promise<boolean> {
  const result = await db.query('UPDATE agents SET rollout_group = $1, push_url = $2 WHERE id = $3', [settings.group ?? null, settings.pushUrl ?? null, agentId]);
  return result.rowCount === 1;
}

export async function getSettings(db: Queryable, agentId: string): Promise<rollout.AgentRolloutSettings | undefined> {
  const [row] = await rows<{ rollout_group: string | null; push_url: string | null }>(db, 'SELECT rollout_group, push_url FROM agents WHERE id = $1', [agentId]);
  return row === undefined ? undefined : { group: (row.rollout_group ?? undefined) as rollout.RolloutGroup | undefined, pushUrl: row.push_url ?? undefined };
}

export async function candidates(db: Queryable): Promise<rollout.RolloutCandidate[]> {
  return (await rows<CandidateRow>(db, 'SELECT id, platform, agent_version, daemon_version, rollout_group, push_url FROM agents WHERE revoked_at IS NULL ORDER BY id')).map(candidateRecord);
}

export async function activeOf(db: Queryable, artifact: string): Promise<string | undefined> {
  const [row] = await rows<{ id: string }>(db, `SELECT id FROM deployments WHERE artifact = $1 AND status IN (${ACTIVE_SQL}) ORDER BY created_at LIMIT 1`, [artifact]);
  return row?.id;
}

export async function getDeployment(db: Queryable, id: string): Promise<rollout.DeploymentRecord | undefined> {
  const [row] = await rows<DeploymentRow>(db, 'SELECT * FROM deployments WHERE id = $1', [id]);
  return row === undefined ? undefined : deploymentRecord(row);
}

export async function listDeployments(db: Queryable, filter: 'active' | 'open' | 'all', limit: number): Promise<rollout.DeploymentRecord[]> {
  const where = filter === 'active' ? `WHERE status IN (${ACTIVE_SQL}) ORDER BY created_at DESC, id DESC` : filter === 'open' ? 'WHERE completed_at IS NULL ORDER BY created_at, id' : 'ORDER BY created_at DESC, id DESC';
  return (await rows<DeploymentRow>(db, `SELECT * FROM deployments ${where} LIMIT $1`, [limit])).map(deploymentRecord);
}

/** Call inside a transaction. */
// A tick that starts a thousand targets writes them (and their commands) in a few statements
// (insertRows), not a round trip per row; the events keep their order (their seq).
export async function writeRollout(db: Queryable, write: rollout.RolloutWrite, insertCommands: (items: readonly { command: NewCommand; nonce: NewNonce }[]) => Promise<void>): Promise<void> {
  if (write.deployment !== undefined) {
    await insertRows(db, 'deployments', [deploymentRow(write.deployment)], { key: ['id'], update: DEPLOYMENT_UPDATED });
  }
  // Commands before targets: a target names its command, and both land in this one transaction.
  if (write.commands !== undefined && write.commands.length > 0) await insertCommands(write.commands);
  const withdrawn = await withdraw(db, write.withdraw ?? []);
  await insertRows(db, 'deployment_targets', [...(write.targets ?? []), ...withdrawn].map(targetRow), { key: ['deployment_id', 'agent_id'], update: TARGET_UPDATED });
  await insertRows(
    db,
    'deployment_events',
    (write.events ?? []).map((e) => ({ deployment_id: e.deploymentId, ts: e.at.getTime(), event_type: e.type, message: e.message, details_json: e.details === undefined ? null : JSON.stringify(e.details) })),
  );
}

/**
 * Withdraws the commands no check-in has handed out and answers the targets to write for them. A
 * check-in delivering one at the same time either goes first (delivered_count is then 1 and it
 * stays) or finds it acked: its UPDATE rechecks acked_at on the row it waited for.
 */
async function withdraw(db: Queryable, steps: NonNullable<rollout.RolloutWrite['withdraw']>): Promise<rollout.TargetRecord[]> {
  if (steps.length === 0) return [];
  const at = steps[0]?.target.updatedAt.getTime();
  const found = await rows<{ id: string }>(
    db,
    "UPDATE commands SET acked_at = $1, outcome = 'withdrawn', outcome_at = $1 WHERE id = ANY($2::text[]) AND acked_at IS NULL AND delivered_count = 0 RETURNING id",
    [at, steps.map((s) => s.commandId)],
  );
  const ids = new Set(found.map((row) => row.id));
  return steps.filter((s) => ids.has(s.commandId)).map((s) => s.target);
}

export async function targets(db: Queryable, deploymentId: string): Promise<rollout.TargetRecord[]> {
  return (await rows<TargetRow>(db, 'SELECT * FROM deployment_targets WHERE deployment_id = $1 ORDER BY phase, agent_id', [deploymentId])).map(targetRecord);
}

export async function targetViews(db: Queryable, deploymentId: string, open: boolean, phase: number | undefined, pendingLimit?: number): Promise<rollout.TargetView[]> {
  let found: TargetViewRow[];
  if (open && phase !== undefined && pendingLimit !== undefined) {
    found = await rows<TargetViewRow>(db, boundedTargetViewsSql('$1', '$2', '$3'), [deploymentId, phase, pendingLimit]);
  } else if (open && phase !== undefined) {
    found = await rows<TargetViewRow>(
      db,
      `${TARGET_VIEW_SQL} AND ((t.state NOT IN ${FINAL_TARGET_SQL} AND (t.state != 'pending' OR t.phase = $2)) OR t.rollback_state = 'queued') ORDER BY t.phase, t.agent_id`,
      [deploymentId, phase],
    );
  } else if (open) {
    found = await rows<TargetViewRow>(db, `${TARGET_VIEW_SQL} AND (t.state NOT IN ${FINAL_TARGET_SQL} OR t.rollback_state = 'queued') ORDER BY t.phase, t.agent_id`, [deploymentId]);
  } else {
    found = await rows<TargetViewRow>(db, `${TARGET_VIEW_SQL} ORDER BY t.phase, t.agent_id`, [deploymentId]);
  }
  return found.map(targetView);
}

export async function counts(db: Queryable, deploymentId: string): Promise<{ byState: rollout.TargetCounts; byPhase: rollout.TargetCounts[]; deferred: number }> {
  return targetCounts(
    await rows<TargetCountRow>(
      db,
      'SELECT phase, state, count(*) AS n, count(*) FILTER (WHERE deferred_count > 0) AS deferred FROM deployment_targets WHERE deployment_id = $1 GROUP BY phase, state ORDER BY phase, state',
      [deploymentId],
    ),
  );
}

export async function events(db: Queryable, deploymentId: string | undefined, afterSeq: number, limit: number, latest: boolean): Promise<rollout.DeploymentEventRecord[]> {
  let found: EventRow[];
  if (latest && deploymentId !== undefined) {
    found = await rows<EventRow>(db, 'SELECT * FROM (SELECT * FROM deployment_events WHERE deployment_id = $1 ORDER BY seq DESC LIMIT $2) AS latest ORDER BY seq', [deploymentId, limit]);
  } else if (deploymentId === undefined) {
    found = await rows<EventRow>(db, 'SELECT * FROM deployment_events WHERE seq > $1 ORDER BY seq LIMIT $2', [afterSeq, limit]);
  } else {
    found = await rows<EventRow>(db, 'SELECT * FROM deployment_events WHERE deployment_id = $1 AND seq > $2 ORDER BY seq LIMIT $3', [deploymentId, afterSeq, limit]);
  }
  return found.map(eventRecord);
}
