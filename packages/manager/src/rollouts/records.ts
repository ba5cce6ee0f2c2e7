import type { DeploymentStatusValue, DeploymentStrategy, JsonObject, RolloutTargetState } from '@drover/protocol';
import type { LeaseFence, NewCommand, NewNonce, PendingAuditRecord } from '../store/records.js';

// What the store keeps of a rollout: the deployment (its options fixed at creation, where its
// phases stand), one target per agent, and the deployment's event timeline. Times are Dates; the
// engine re-arms every timer from these after a restart, so each one that matters is stored.

/** The operator-set canary groups, in the order their phases run. */
export const rolloutGroups = ['explorer', 'early_adopter', 'general'] as const;
/** An agent's canary group: its phase when a deployment runs by groups. */
export type RolloutGroup = (typeof rolloutGroups)[number];

/**
 * Statuses of a deployment that still drives targets: one of them per artifact at a time, and a
 * deployment leaves them only to end (completed, failed, cancelled, rolled back).
 */
export const activeDeploymentStatuses: readonly DeploymentStatusValue[] = ['pending', 'in_progress', 'paused', 'rolling_back'];

/** How a rollout behaves; fixed when the deployment is created (see options.ts for defaults). */
export interface RolloutOptions {
  /** Targets being updated at once, across phases (deferred ones included). */
  maxInFlight: number;
  /** Share (0..1) of a phase's targets that must succeed for its gate to pass. */
  minHealthyRatio: number;
  /** Failed targets a phase may have and still pass its gate. */
  maxFailures: number;
  /** Seconds to wait after a phase's gate passed before the next phase starts. */
  soakSeconds: number;
  /** Seconds an updated agent must run the target version and report healthy to count as succeeded. */
  healthGraceSeconds: number;
  /** Seconds a busy agent may keep deferring, from its first deferral, before it counts as failed. */
  deferralWindowSeconds: number;
  /** Seconds one target has, from its notification, to end (succeeded or not). */
  targetDeadlineSeconds: number;
  /** First wait (seconds) before a busy push-mode agent is asked again; doubles each time. */
  deferralBackoffSeconds: number;
  /** The longest wait (seconds) between two asks of a busy push-mode agent. */
  deferralBackoffMaxSeconds: number;
  /** On a failed gate, send the phase's updated agents signed rollback commands. */
  autoRollback: boolean;
  /** Cumulative shares of the fleet per canary phase when no agent has a group, e.g. [10, 30, 100]. */
  percentages: number[];
}

/** Where the current phase stands. */
// gate_failed and stopped end the phases: a gate failed (the deployment fails, after any rollback) or an operator stopped it.
export type PhaseState = 'rolling' | 'soaking' | 'awaiting_promote' | 'done' | 'gate_failed' | 'stopped';

/** One phase of a deployment, by name; its targets name it by index. */
export interface RolloutPhase {
  /** `explorers`, `early_adopters`, `general` (CIRIS's names), `10%`..., or `all`. */
  name: string;
}

/** A deployment: what it rolls out, with which options, and where its phases stand. */
export interface DeploymentRecord {
  id: string;
  artifact: 'agent' | 'daemon';
  version: string;
  commitSha: string | undefined;
  changelog: string | undefined;
  strategy: DeploymentStrategy;
  status: DeploymentStatusValue;
  message: string;
  options: RolloutOptions;
  phases: RolloutPhase[];
  /** The notification it was created from, as received (no secret in it). */
  notification: JsonObject | undefined;
  phaseIndex: number;
  phaseState: PhaseState;
  phaseStartedAt: Date | undefined;
  soakUntil: Date | undefined;
  /** `deploy:<tokenId>`, `operator:<tokenId>`, `system`. */
  createdBy: string;
  createdAt: Date;
  startedAt: Date | undefined;
  completedAt: Date | undefined;
  updatedAt: Date;
}

/** Where a rollback of one target stands (set once the engine decided to roll it back). */
export type TargetRollbackState = 'queued' | 'succeeded' | 'failed';

/** One agent in a deployment: its phase, its state, and the command and timers that move it. */
export interface TargetRecord {
  deploymentId: string;
  agentId: string;
  phase: number;
  state: RolloutTargetState;
  /** `daemon`: an update command through check-ins; `push`: the manager calls the agent's shutdown route. */
  mode: 'daemon' | 'push';
  fromVersion: string | undefined;
  toVersion: string;
  /** Notifications sent (push mode: shutdown calls). */
  attempts: number;
  /** The one update command of this deployment for this agent (daemon mode). */
  commandId: string | undefined;
  rollbackCommandId: string | undefined;
  rollbackState: TargetRollbackState | undefined;
  notifiedAt: Date | undefined;
  deadlineAt: Date | undefined;
  /** Times the agent said it was busy. */
  deferredCount: number;
  firstDeferredAt: Date | undefined;
  /** Push mode: do not ask again before this. */
  deferredUntil: Date | undefined;
  /** Since when the agent has run the target version and reported healthy, without a break. */
  healthySince: Date | undefined;
  /** Push mode: the last health probe. */
  lastProbeAt: Date | undefined;
  errorCode: string | undefined;
  message: string | undefined;
  updatedAt: Date;
}

/** A target with what the engine needs of its agent and commands, read in one query. */
export interface TargetView extends TargetRecord {
  agentVersion: string;
  agentHealth: JsonObject | undefined;
  lastCheckinAt: Date | undefined;
  /** The update the agent's daemon last said it was carrying out (UpdateProgress of its check-in state). */
  agentUpdate: { commandId: string; step: string } | undefined;
  pushUrl: string | undefined;
  /** The host was removed (`drover agents remove`): the engine skips the target. */
  agentRevoked: boolean;
  command: { ackedAt: Date | undefined; outcome: string | undefined; detail: JsonObject | undefined } | undefined;
  rollbackCommand: { ackedAt: Date | undefined; outcome: string | undefined; detail: JsonObject | undefined } | undefined;
}

/** One event of a deployment's timeline (`GET /manager/v1/updates/status` and its server-sent events). */
export interface DeploymentEventRecord {
  seq: number;
  deploymentId: string;
  at: Date;
  type: string;
  message: string;
  details: JsonObject | undefined;
}

/** An event to append; the store numbers it. */
export type NewDeploymentEvent = Omit<DeploymentEventRecord, 'seq'>;

/** The agent settings the operator controls for rollouts. */
export interface AgentRolloutSettings {
  group: RolloutGroup | undefined;
  pushUrl: string | undefined;
}

/** Agents as a new deployment sees them: who, what they run, where they sit. */
export interface RolloutCandidate {
  id: string;
  platform: string;
  agentVersion: string;
  daemonVersion: string;
  group: RolloutGroup | undefined;
  pushUrl: string | undefined;
}

/**
 * One step of the engine, written atomically: the deployment's new state, targets' new states,
 * the commands (with their nonces) those transitions send, and the events they add. A
 * transition and the command it sends commit together, so a restart never finds one without
 * the other.
 */
export interface RolloutWrite {
  deployment?: DeploymentRecord | undefined;
  targets?: readonly TargetRecord[] | undefined;
  commands?: readonly { command: NewCommand; nonce: NewNonce }[] | undefined;
  events?: readonly NewDeploymentEvent[] | undefined;
  /**
   * Targets that never start if no check-in has handed out their command yet: each command is
   * withdrawn (acked with outcome `withdrawn`) only while its delivered count is 0, and only then is
   * its target written as given. A command delivered already is the host's; its target stays as it is.
   */
  withdraw?: readonly { commandId: string; target: TargetRecord }[] | undefined;
  /** Audit records of this step, committed with it (store/records.ts, audit/trail.ts). */
  audit?: readonly PendingAuditRecord[] | undefined;
  /** The rollout lease this step was decided under: written only while it is still current (decision 0038). */
  fence?: LeaseFence | undefined;
}

/** Counts of a deployment's targets per state. */
export type TargetCounts = Partial<Record<RolloutTargetState, number>>;
