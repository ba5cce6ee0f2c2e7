import { compareVersions } from '@drover/protocol';
import type { JsonObject, RolloutTargetState } from '@drover/protocol';
import type { ManagerRolloutCode } from '../errors.js';
import type { DeploymentRecord, RolloutWrite, TargetRecord, TargetView } from './records.js';
import type { AgentHealthProbe } from './push-client.js';

// One target's next state, from what the store and (push mode) the agent's health route say. Pure:
// the engine persists what this returns before it acts on it. The per-target state machine
// (DESIGN.md "Rollout engine"): pending -> notified -> [deferred] -> updating -> health_check ->
// succeeded | failed | skipped | rolled_back.

export const finalTargetStates: ReadonlySet<RolloutTargetState> = new Set(['succeeded', 'failed', 'skipped', 'rolled_back']);

/** A decision of the agent (accept, reject, defer) or an end of the target: audited and added to the events. */
export interface TargetDecision {
  event: 'agent_accepted' | 'agent_rejected' | 'agent_deferred' | 'agent_updated' | 'agent_failed' | 'agent_rolled_back';
  message: string;
  details: JsonObject;
}

export interface TargetStep {
  next: TargetRecord;
  decision?: TargetDecision | undefined;
}

const FAILED_OUTCOMES: ReadonlySet<string> = new Set(['failed', 'rolled_back', 'rejected']);
/** Update steps a daemon reaches only once its agent accepted the shutdown: the swap is under way. */
const DRAIN_ACCEPTED_STEPS: ReadonlySet<string> = new Set(['swapped', 'starting', 'health_check', 'committed', 'rolling_back', 'rolled_back']);

export function sameVersion(a: string | undefined, b: string): boolean {
  if (a === undefined) return false;
  try {
    return compareVersions(a, b) === 0;
  } catch {
    return false;
  }
}

/** A target record without the view's joined columns. */
export function recordOf(view: TargetView): TargetRecord {
  return {
    deploymentId: view.deploymentId,
    agentId: view.agentId,
    phase: view.phase,
    state: view.state,
    mode: view.mode,
    fromVersion: view.fromVersion,
    toVersion: view.toVersion,
    attempts: view.attempts,
    commandId: view.commandId,
    rollbackCommandId: view.rollbackCommandId,
    rollbackState: view.rollbackState,
    notifiedAt: view.notifiedAt,
    deadlineAt: view.deadlineAt,
    deferredCount: view.deferredCount,
    firstDeferredAt: view.firstDeferredAt,
    deferredUntil: view.deferredUntil,
    healthySince: view.healthySince,
    lastProbeAt: view.lastProbeAt,
    errorCode: view.errorCode,
    message: view.message,
    updatedAt: view.updatedAt,
  };
}

export function failTarget(target: TargetRecord, code: ManagerRolloutCode, message: string, now: Date): TargetStep {
  return {
    next: { ...target, state: 'failed', errorCode: code, message, healthySince: undefined, deferredUntil: undefined, updatedAt: now },
    // A refusal before anything changed is marked agent_rejected by the caller; anything else failed.
    decision: { event: 'agent_failed', message, details: { code, previousState: target.state } },
  };
}

/** Whether the update reached the host (so that a rollback has something to undo). */
export function installed(view: TargetView): boolean {
  return view.command?.outcome === 'succeeded' || view.state === 'health_check' || view.state === 'succeeded';
}

/** Healthy now: runs the target version and says so, per its last report. */
function healthyNow(version: string | undefined, status: string | undefined, toVersion: string): boolean {
  return sameVersion(version, toVersion) && status === 'healthy';
}

/** health_check: healthy for the whole grace period -> succeeded; a break restarts the period. */
function checkHealth(target: TargetRecord, healthy: boolean, deployment: DeploymentRecord, now: Date): TargetStep | undefined {
  if (!healthy) return target.healthySince === undefined ? undefined : { next: { ...target, healthySince: undefined, updatedAt: now } };
  const since = target.healthySince ?? now;
  if (now.getTime() - since.getTime() >= deployment.options.healthGraceSeconds * 1000) {
    return {
      next: { ...target, state: 'succeeded', healthySince: since, errorCode: undefined, message: `runs ${target.toVersion}, healthy`, updatedAt: now },
      decision: { event: 'agent_updated', message: `${target.agentId} runs ${target.toVersion} and stayed healthy for the grace period`, details: {} },
    };
  }
  return target.healthySince === undefined ? { next: { ...target, healthySince: since, updatedAt: now } } : undefined;
}

function deadlinePassed(target: TargetRecord, now: Date): boolean {
  return target.deadlineAt !== undefined && now.getTime() >= target.deadlineAt.getTime();
}

function onDeadline(target: TargetRecord, now: Date): TargetStep {
  if (target.state === 'health_check') return failTarget(target, 'TARGET_UNHEALTHY', `${target.agentId} did not run ${target.toVersion} healthily for the grace period before its deadline`, now);
  return failTarget(target, 'TARGET_DEADLINE_EXCEEDED', `${target.agentId} did not finish the update before its deadline`, now);
}

/**
 * The engine's own end of a daemon's deferral window: a backstop for a daemon that ignores the
 * window its command carries (an older droverd) or went quiet. A current daemon gives up, or has its
 * drain accepted, by its own window's end, which comes first (it starts at its first 503, before
 * the manager hears of it); the backstop waits one stale interval more for that news, so that it
 * never fails a target whose drain the daemon accepted just in time (decision 0012).
 */
function windowPassed(target: TargetRecord, deployment: DeploymentRecord, now: Date, graceMs: number): boolean {
  return target.firstDeferredAt !== undefined && now.getTime() >= target.firstDeferredAt.getTime() + deployment.options.deferralWindowSeconds * 1000 + graceMs;
}

/** What stopping a deployment writes: pending targets skipped, undelivered commands withdrawn with their targets. */
export interface StoppedTargets {
  skip: TargetRecord[];
  withdraw: NonNullable<RolloutWrite['withdraw']>[number][];
}

/**
 * The targets of a stopping deployment (aborted, rolled back, superseded, failed its gate) that
 * never start: every pending one is skipped, and every notified one whose command no check-in has
 * handed out yet is withdrawn with it, in the step's own fenced write (RolloutWrite.withdraw), so a
 * host that was not holding the channel does not take it later. A command delivered already is the
 * host's: that target runs its course.
 */
export function stopTargets(targets: readonly TargetRecord[], now: Date, why: string): StoppedTargets {
  const skip = (t: TargetRecord, message: string): TargetRecord => ({ ...t, state: 'skipped', errorCode: 'DEPLOYMENT_STOPPED', message, deferredUntil: undefined, updatedAt: now });
  return {
    skip: targets.filter((t) => t.state === 'pending').map((t) => skip(t, `never started: ${why}`)),
    withdraw: targets
      .filter((t) => t.state === 'notified' && t.commandId !== undefined)
      .map((t) => ({ commandId: t.commandId ?? '', target: skip(t, `never started: ${why}; its command was withdrawn before the host took it`) })),
  };
}

/**
 * Daemon mode: the update command's ack and outcome (from check-ins) and the agent's reported
 * version and health move the target. Undefined when nothing changed.
 */
export function stepDaemonTarget(view: TargetView, deployment: DeploymentRecord, now: Date, staleAfterMs: number): TargetStep | undefined {
  const target = recordOf(view);
  const outcome = view.command?.outcome;
  // Withdrawn before any check-in handed it out. Written with its target (stopTargets) since
  // 2026-12-07; a store written before then can hold the command withdrawn and the target notified.
  if (outcome === 'withdrawn') return { next: { ...target, state: 'skipped', errorCode: 'DEPLOYMENT_STOPPED', message: 'never started: its command was withdrawn before the host took it', updatedAt: now } };
  if (outcome !== undefined && FAILED_OUTCOMES.has(outcome) && target.state !== 'health_check') {
    const code = typeof view.command?.detail?.['code'] === 'string' ? view.command.detail['code'] : outcome;
    // The daemon gave up a busy agent at the end of the command's deferral window: the same end as the engine's own.
    const back = target.fromVersion === undefined ? 'the version it ran' : target.fromVersion;
    const step =
      outcome === 'failed' && code === 'DEFERRAL_WINDOW_EXPIRED'
        ? failTarget(target, 'DEFERRAL_WINDOW_EXPIRED', `${target.agentId} stayed busy past the deferral window; its daemon gave up without forcing it`, now)
        : outcome === 'rolled_back'
          ? // The daemon installed the update, saw it fail and went back by itself: status and event say so alike.
            failTarget(target, 'HOST_ROLLED_BACK', `${target.agentId}'s daemon installed ${target.toVersion}, saw it fail (${code}) and went back to ${back} by itself`, now)
          : failTarget(target, 'UPDATE_FAILED', `${target.agentId}'s daemon reported ${outcome} (${code})`, now);
    if (outcome === 'rejected' && step.decision !== undefined) step.decision = { ...step.decision, event: 'agent_rejected' };
    return step;
  }
  // The last result is still `deferred`, but the daemon's check-in state shows the agent freed up:
  // its drain was accepted and the swap is under way. The outcome follows, by the deadline at the latest.
  const progress = view.agentUpdate?.commandId === target.commandId ? view.agentUpdate?.step : undefined;
  const drainAccepted = outcome === 'deferred' && progress !== undefined && DRAIN_ACCEPTED_STEPS.has(progress);
  if (drainAccepted && target.state === 'deferred') {
    return { next: { ...target, state: 'updating', updatedAt: now }, decision: { event: 'agent_accepted', message: `${target.agentId} is free again: its daemon's drain was accepted (${progress})`, details: { deferrals: target.deferredCount } } };
  }
  // A drain in flight at the last check-in holds the backstop off, as long as that check-in is recent.
  const draining = progress === 'draining' && view.lastCheckinAt !== undefined && now.getTime() - view.lastCheckinAt.getTime() <= staleAfterMs;
  if (target.state === 'deferred' && outcome === 'deferred' && !draining && windowPassed(target, deployment, now, staleAfterMs)) {
    return failTarget(target, 'DEFERRAL_WINDOW_EXPIRED', `${target.agentId} stayed busy past the deferral window; it was not forced`, now);
  }
  if (deadlinePassed(target, now)) return onDeadline(target, now);
  if (outcome === 'deferred') {
    // Deferred once and then seen accepted: it never goes back to `deferred` (droverd's progress may
    // vanish before its outcome arrives, e.g. a result the manager refused); the outcome or the deadline ends it.
    const acceptedAfterDeferral = target.state === 'updating' && target.firstDeferredAt !== undefined;
    if (target.state === 'deferred' || drainAccepted || acceptedAfterDeferral) return undefined;
    return {
      next: { ...target, state: 'deferred', deferredCount: target.deferredCount + 1, firstDeferredAt: target.firstDeferredAt ?? now, updatedAt: now },
      decision: { event: 'agent_deferred', message: `${target.agentId} is busy; the daemon retries inside the deferral window`, details: { deferrals: target.deferredCount + 1 } },
    };
  }
  if (outcome === 'succeeded') {
    const fresh = view.lastCheckinAt !== undefined && now.getTime() - view.lastCheckinAt.getTime() <= staleAfterMs;
    const healthy = fresh && healthyNow(view.agentVersion, typeof view.agentHealth?.['status'] === 'string' ? view.agentHealth['status'] : undefined, target.toVersion);
    if (target.state !== 'health_check') {
      const moved: TargetRecord = { ...target, state: 'health_check', healthySince: undefined, updatedAt: now };
      const step = checkHealth(moved, healthy, deployment, now) ?? { next: moved };
      // Acked and done within one check-in: the acceptance is still a decision to record.
      if (target.state === 'notified' && step.decision === undefined) step.decision = { event: 'agent_accepted', message: `${target.agentId} accepted the update command`, details: {} };
      return step;
    }
    return checkHealth(target, healthy, deployment, now);
  }
  if (view.command?.ackedAt !== undefined && (target.state === 'notified' || target.state === 'deferred')) {
    return {
      next: { ...target, state: 'updating', updatedAt: now },
      decision: target.state === 'notified' ? { event: 'agent_accepted', message: `${target.agentId} accepted the update command`, details: {} } : undefined,
    };
  }
  return undefined;
}

/** Push mode, for a target being updated: its health probe (undefined: it did not answer) moves it. */
export function stepPushProbe(view: TargetView, deployment: DeploymentRecord, probe: AgentHealthProbe | undefined, now: Date): TargetStep | undefined {
  const target = { ...recordOf(view), lastProbeAt: now };
  if (deadlinePassed(target, now)) return onDeadline(target, now);
  const healthy = probe !== undefined && healthyNow(probe.version, probe.status, target.toVersion);
  if (target.state === 'updating') {
    if (probe === undefined || !sameVersion(probe.version, target.toVersion)) return undefined;
    const moved: TargetRecord = { ...target, state: 'health_check', healthySince: undefined, updatedAt: now };
    return checkHealth(moved, healthy, deployment, now) ?? { next: moved };
  }
  return checkHealth(target, healthy, deployment, now);
}

/** Exponential backoff for a busy push-mode agent: base * 2^(n-1), capped; Retry-After when longer. */
export function deferralDelayMs(deferrals: number, deployment: DeploymentRecord, retryAfterSeconds: number | undefined): number {
  const { deferralBackoffSeconds, deferralBackoffMaxSeconds } = deployment.options;
  const backoff = Math.min(deferralBackoffSeconds * 2 ** Math.max(0, deferrals - 1), deferralBackoffMaxSeconds);
  return Math.round(Math.max(backoff, Math.min(retryAfterSeconds ?? 0, deferralBackoffMaxSeconds)) * 1000);
}
