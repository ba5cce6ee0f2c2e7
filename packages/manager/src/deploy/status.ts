import type { DeploymentEvent, DeploymentStatus, DeploymentTarget } from '@drover/protocol';
import type { DeploymentEventRecord, DeploymentRecord, TargetCounts, TargetRecord } from '../rollouts/records.js';

// A deployment as the deploy API shows it: CIRIS's DeploymentStatus fields, drover's per-agent
// states. Nothing secret is in a deployment, so this is a plain projection.

export function eventView(event: DeploymentEventRecord): DeploymentEvent {
  return { timestamp: event.at.toISOString(), event_type: event.type, message: event.message, details: event.details ?? null };
}

export function targetView(target: TargetRecord, phases: DeploymentRecord['phases']): DeploymentTarget {
  return {
    agent_id: target.agentId,
    state: target.state,
    phase: phases[target.phase]?.name ?? null,
    from_version: target.fromVersion ?? null,
    to_version: target.toVersion,
    attempts: target.attempts,
    updated_at: target.updatedAt.toISOString(),
    deferred_until: target.deferredUntil?.toISOString() ?? null,
    ...(target.message === undefined ? {} : { message: target.message.slice(0, 4096) }),
    error: target.errorCode === undefined ? null : { code: target.errorCode, message: (target.message ?? target.errorCode).slice(0, 4096) },
  };
}

export interface DeploymentSummary {
  deployment_id: string;
  status: DeploymentRecord['status'];
  strategy: DeploymentRecord['strategy'];
  artifact: DeploymentRecord['artifact'];
  version: string;
  canary_phase: string | null;
  phase_index: number;
  phase_state: DeploymentRecord['phaseState'];
  phases: { name: string; counts: TargetCounts }[];
  counts: TargetCounts;
  agents_total: number;
  agents_deferred: number;
  message: string;
}

export function summaryOf(deployment: DeploymentRecord, counts: { byState: TargetCounts; byPhase: TargetCounts[]; deferred: number }): DeploymentSummary {
  return {
    deployment_id: deployment.id,
    status: deployment.status,
    strategy: deployment.strategy,
    artifact: deployment.artifact,
    version: deployment.version,
    canary_phase: deployment.phases[deployment.phaseIndex]?.name ?? null,
    phase_index: deployment.phaseIndex,
    phase_state: deployment.phaseState,
    phases: deployment.phases.map((phase, i) => ({ name: phase.name, counts: counts.byPhase[i] ?? {} })),
    counts: counts.byState,
    agents_total: Object.values(counts.byState).reduce((sum, n) => sum + n, 0),
    agents_deferred: counts.deferred,
    message: deployment.message,
  };
}

export function statusOf(
  deployment: DeploymentRecord,
  targets: readonly TargetRecord[],
  events: readonly DeploymentEventRecord[],
): DeploymentStatus {
  const count = (state: TargetRecord['state']): number => targets.filter((t) => t.state === state).length;
  const inProgress: Record<string, string> = {};
  for (const t of targets) if (t.state === 'notified' || t.state === 'updating' || t.state === 'deferred' || t.state === 'health_check') inProgress[t.agentId] = t.state;
  const assignments: Record<string, string[]> = {};
  for (const t of targets) (assignments[deployment.phases[t.phase]?.name ?? 'all'] ??= []).push(t.agentId);
  return {
    deployment_id: deployment.id,
    notification: deployment.notification ?? null,
    agents_total: targets.length,
    agents_updated: count('succeeded'),
    agents_deferred: targets.filter((t) => t.deferredCount > 0).length,
    agents_failed: count('failed'),
    canary_phase: deployment.phases[deployment.phaseIndex]?.name ?? null,
    started_at: deployment.startedAt?.toISOString() ?? null,
    completed_at: deployment.completedAt?.toISOString() ?? null,
    status: deployment.status,
    message: deployment.message,
    events: events.map(eventView),
    strategy: deployment.strategy,
    updated_at: deployment.updatedAt.toISOString(),
    agents_in_progress: inProgress,
    canary_assignments: assignments,
    artifact: deployment.artifact,
    version: deployment.version,
    agents: targets.map((t) => targetView(t, deployment.phases)),
  };
}

