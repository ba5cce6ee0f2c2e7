import { hostname } from 'node:os';
import { tokenId } from '@drover/protocol';
import type { DeploymentAction, DeploymentStatus, JsonObject, UpdateNotification, UpdateNotifyResponse } from '@drover/protocol';
import { DeploymentIdSchema } from '@drover/protocol/internal';
import { createDeployment } from '../deploy/notify.js';
import { defaultRolloutOptions } from './options.js';
import type { Actor, ManagerContext } from '../context.js';
import { statusOf as deploymentStatusOf } from '../deploy/status.js';
import { ManagerError } from '../errors.js';
import { echo } from '../presented.js';
import type { HttpClient } from '@drover/http';
import { createPushHttp, probeHealth, requestShutdown, shutdownReason } from './push-client.js';
import type { AgentHealthProbe, ShutdownAnswer } from './push-client.js';
import { evaluateGate } from './gate.js';
import { activeDeploymentStatuses } from './records.js';
import type { DeploymentRecord, NewDeploymentEvent, RolloutOptions, RolloutWrite, TargetRecord, TargetView } from './records.js';
import { deferralDelayMs, failTarget, finalTargetStates, installed, recordOf, stepDaemonTarget, stepPushProbe, stopTargets } from './target-step.js';
import type { StoppedTargets, TargetDecision, TargetStep } from './target-step.js';
import { buildUpdate, queuedAudit } from '../agents/update-commands.js';
import type { BuiltUpdate } from '../agents/update-commands.js';
import { versionKey } from '../releases/catalog.js';
import type { AgentRecord, LeaseFence, PendingAuditRecord, ReleaseRecord } from '../store/records.js';

// The rollout engine: a tick loop driven by what the store holds (DESIGN.md "Rollout engine";
// docs/decisions/0009). Each tick reads every open deployment and its open targets (of the current
// phase's pending ones, only as many as it may start: decision 0049), decides
// every transition from stored timestamps and the clock, writes them (with the update commands
// they send) in one transaction, and only then acts: audits, push-mode shutdown calls. Nothing
// lives only in memory, so a manager killed at any point and restarted resumes the rollout on its
// first tick: a deadline, a soak or a backoff is a stored time compared with the clock, never a
// timer that a crash would lose.
//
// Ticks, operator actions and notifications run one at a time (#serial): a decision is always
// taken on the state the previous one wrote.

/** How the rollout engine runs (`ManagerOptions.rollout`): its tick, its push-mode client, its defaults. */
export interface RolloutEngineOptions {
  /** Milliseconds between ticks (default 1000). */
  tickMs?: number | undefined;
  /** The HTTP client of push-mode calls (default: the manager's own, with its timeouts and retries). */
  http?: HttpClient | undefined;
  /** Push-mode calls made at once (default 16). */
  pushConcurrency?: number | undefined;
  /**
   * Targets one tick starts at most (default 1000): a phase of thousands goes out over several
   * ticks, each its own transaction, so the first commands reach their hosts while the next are
   * signed, and no tick holds the event loop (and the check-ins bringing results) for long.
   */
  startsPerTick?: number | undefined;
  /** Defaults of new rollouts (each notification may override them in metadata.rollout). */
  defaults?: Partial<RolloutOptions> | undefined;
}

const EVENTS_IN_STATUS = 200; // latest events a status answer carries
/** The lease under which rollout steps run, one replica at a time (decision 0038). */
const ROLLOUT_LEASE = 'rollouts';
const OPEN_DEPLOYMENTS_MAX = 64; // deployments one tick drives (one active per artifact, plus draining ones)
const POKE_MIN_MS = 100; // ms: the least between two ticks an event asks for (more after a long tick: see #pokeGapMs)

function isFinal(target: TargetRecord): boolean {
  return finalTargetStates.has(target.state);
}

/** Runs `fn` over `items`, at most `limit` at a time. */
async function pool<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** What one tick changes, in decision order: the targets' next records and the decisions to audit. */
class TickChanges {
  readonly changed = new Map<string, TargetRecord>();
  readonly decisions: { target: TargetRecord; decision: TargetDecision }[] = [];

  /** Records a step's next state and its decision, if any. */
  take(step: TargetStep | undefined): void {
    if (step === undefined) return;
    this.changed.set(step.next.agentId, step.next);
    if (step.decision !== undefined) this.decisions.push({ target: step.next, decision: step.decision });
  }

  /** The target as this tick left it so far. */
  current(view: TargetView): TargetRecord {
    return this.changed.get(view.agentId) ?? recordOf(view);
  }
}

/** The targets a tick starts: update commands to store, push-mode agents to call once stored. */
interface StartedTargets {
  built: BuiltUpdate[];
  pushCalls: TargetRecord[];
}

export class RolloutEngine {
  readonly #ctx: ManagerContext;
  readonly #tickMs: number;
  readonly #http: HttpClient;
  readonly #ownsHttp: boolean;
  readonly #pushConcurrency: number;
  readonly #startsPerTick: number;
  readonly defaults: RolloutOptions;
  #queue: Promise<unknown> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  #stopped = false;
  #ticking = false;
  #poked = false;
  /** ms within which the tick under way wants the next one: it moved a deployment on, or a soak ends. */
  #soonMs: number | undefined;
  /** The tick under way started all it may (startsPerTick) and more wait: the next comes soon. */
  #moreToStart = false;
  /** When the timer set fires (Date.now() ms), if one is set. */
  #timerDue: number | undefined;
  #lastTickEnd = 0;
  #lastTickMs = 0;
  /** ms the tick under way has waited for the audit log (not the engine's own time; see #pokeGapMs). */
  #flushWaitMs = 0;
  #fence: LeaseFence | undefined;
  readonly #holder = `${hostname()}:${process.pid}`;

  constructor(ctx: ManagerContext, options: RolloutEngineOptions = {}) {
    this.#ctx = ctx;
    this.#tickMs = options.tickMs ?? 1000;
    this.#ownsHttp = options.http === undefined;
    this.#http = options.http ?? createPushHttp();
    this.#pushConcurrency = options.pushConcurrency ?? 16;
    this.#startsPerTick = options.startsPerTick ?? 1000;
    if (!Number.isSafeInteger(this.#startsPerTick) || this.#startsPerTick < 1) {
      throw new ManagerError('ROLLOUT_OPTIONS_INVALID', `The rollout engine's startsPerTick must be a positive integer, got ${String(options.startsPerTick)}.`);
    }
    this.defaults = { ...defaultRolloutOptions, ...options.defaults };
  }

  /** Creates a deployment from a CIRIS notification (see deploy/notify.ts), between two ticks. */
  notify(notification: UpdateNotification, actor: Actor): Promise<UpdateNotifyResponse> {
    return this.#thenPoke(this.#serial(() => createDeployment(this.#ctx, notification, actor, this.defaults, this.#fence), true));
  }

  /** A new deployment or an operator's action is worked on at once, not at the next tick. */
  async #thenPoke<T>(step: Promise<T>): Promise<T> {
    const answer = await step;
    this.poke();
    return answer;
  }

  /** Starts the tick loop. */
  start(): void {
    if (this.#running || this.#stopped) return;
    this.#running = true;
    this.#schedule(this.#tickMs);
  }

  /**
   * Ticks now rather than at the next interval: something the engine decides on happened (a
   * result arrived). Coalesced: one tick for any number of pokes meanwhile.
   */
  poke(): void {
    if (!this.#running) return;
    if (this.#ticking) {
      this.#poked = true;
      return;
    }
    // A stream of results does not run ticks back to back: see #pokeGapMs. A poke never puts off a
    // tick already due sooner.
    const ms = Math.max(0, this.#lastTickEnd + this.#pokeGapMs - Date.now());
    if (this.#timerDue !== undefined && this.#timerDue <= Date.now() + ms) return;
    this.#schedule(ms);
  }

  /**
   * The least time between the end of a tick and an event's tick: POKE_MIN_MS, or twice the last
   * tick's duration when longer, so that a tick over thousands of open targets, asked for by every
   * result, takes at most a third of the event loop from the check-ins that bring the results. The
   * duration leaves out the tick's wait for the audit log, when the check-ins run.
   */
  get #pokeGapMs(): number {
    return Math.max(POKE_MIN_MS, 2 * this.#lastTickMs);
  }

  /** The next tick comes within `ms` (a decision made now, or a soak's end), not only at the interval. */
  #tickWithin(ms: number): void {
    this.#soonMs = Math.min(this.#soonMs ?? Number.POSITIVE_INFINITY, Math.max(0, ms));
  }

  #schedule(ms: number): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timerDue = Date.now() + ms;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#timerDue = undefined;
      this.#ticking = true;
      this.#poked = false;
      this.#moreToStart = false;
      this.#flushWaitMs = 0;
      const started = Date.now();
      void this.tick()
        .catch((error: unknown) => {
          // A failed tick (a full disk, a store gone read-only) is retried at the interval, not at once.
          this.#moreToStart = false;
          this.#ctx.logger.error({ event: 'rollout.tick_failed', err: error }, 'a rollout tick failed; the next one retries');
        })
        .finally(() => {
          this.#ticking = false;
          this.#lastTickEnd = Date.now();
          this.#lastTickMs = Math.max(0, this.#lastTickEnd - started - this.#flushWaitMs);
          const soon = this.#soonMs;
          this.#soonMs = undefined;
          const gap = this.#pokeGapMs;
          // Targets left to start go out next, after the least gap: the check-ins of the ones just
          // started run meanwhile.
          const more = this.#moreToStart ? POKE_MIN_MS : Number.POSITIVE_INFINITY;
          if (this.#running) this.#schedule(Math.min(this.#tickMs, more, this.#poked ? gap : Number.POSITIVE_INFINITY, soon === undefined ? Number.POSITIVE_INFINITY : Math.max(gap, soon)));
        });
    }, ms);
    this.#timer.unref();
  }

  /** Stops the loop and waits for the step under way. */
  async stop(): Promise<void> {
    this.#running = false;
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timerDue = undefined;
    await this.#queue.catch(() => undefined);
    if (this.#ownsHttp) await this.#http.close();
  }

  // One step at a time in this process, and under the rollout lease across the replicas sharing
  // the store (decision 0038): a tick skips when another replica holds it (that one is ticking);
  // an operator action or a notification waits for it. Every write of the step is fenced with
  // the lease's token, so a replica that lost it (stalled, cut off) cannot write a stale decision.
  #serial<T>(fn: () => Promise<T>, wait: true): Promise<T>;
  #serial<T>(fn: () => Promise<T>, wait: false): Promise<T | undefined>;
  #serial<T>(fn: () => Promise<T>, wait: boolean): Promise<T | undefined> {
    const step = async (): Promise<T | undefined> => {
      const lease = await this.#ctx.store.lease(ROLLOUT_LEASE, { wait, holder: this.#holder });
      if (lease === undefined) return undefined;
      this.#fence = { name: lease.name, token: lease.token };
      try {
        return await fn();
      } finally {
        this.#fence = undefined;
        await lease.release();
      }
    };
    const run = this.#queue.then(step, step);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** One pass over every open deployment (the loop calls this; tests with an injected clock call it directly). */
  async tick(): Promise<void> {
    await this.#serial(async () => {
      const open = await this.#ctx.store.listDeployments({ open: true, limit: OPEN_DEPLOYMENTS_MAX });
      for (const deployment of open) await this.#drive(deployment);
    }, false);
  }

  // -- operator actions

  /** pause, resume, abort, promote, rollback: persisted and audited; answers the deployment's status. */
  act(deploymentId: string, action: DeploymentAction, actor: Actor, reason?: string): Promise<DeploymentStatus> {
    return this.#thenPoke(this.#serial(async (): Promise<DeploymentStatus> => {
      const deployment = await this.#ctx.store.getDeployment(deploymentId);
      if (deployment === undefined) throw new ManagerError('DEPLOYMENT_NOT_FOUND', `No deployment has id ${echo(deploymentId, DeploymentIdSchema, '(the given id)')}. List them with \`drover rollout status\`.`);
      const now = this.#ctx.now();
      const invalid = (why: string): ManagerError =>
        new ManagerError('DEPLOYMENT_ACTION_INVALID', `Cannot ${action} deployment ${deploymentId}: ${why}. See its state with \`drover rollout status ${deploymentId}\`.`);
      let next: DeploymentRecord;
      let stop: StoppedTargets = { skip: [], withdraw: [] };
      const active = activeDeploymentStatuses.includes(deployment.status);
      switch (action) {
        case 'pause':
          // Pausing a paused deployment is what the operator wants already: nothing to do, nothing to record.
          if (deployment.status === 'paused') return this.#status(deployment);
          if (deployment.status !== 'in_progress' && deployment.status !== 'pending') throw invalid(`it is ${deployment.status}`);
          next = { ...deployment, status: 'paused', message: 'Paused by an operator: no new agent starts; agents already updating finish.' };
          break;
        case 'resume':
          if (deployment.status === 'in_progress' || deployment.status === 'pending') return this.#status(deployment);
          if (deployment.status !== 'paused') throw invalid(`it is ${deployment.status}, not paused`);
          next = { ...deployment, status: deployment.startedAt === undefined ? 'pending' : 'in_progress', message: 'Resumed by an operator.' };
          break;
        case 'abort':
          if (!active || deployment.status === 'rolling_back') throw invalid(`it is ${deployment.status}`);
          next = { ...deployment, status: 'cancelled', phaseState: 'stopped', message: 'Aborted by an operator: agents already done stay done, queued agents never start.' };
          stop = stopTargets(await this.#ctx.store.listTargets(deployment.id), now, 'the deployment was aborted');
          break;
        case 'promote':
          if (deployment.status !== 'in_progress' && deployment.status !== 'pending') throw invalid(`it is ${deployment.status}`);
          if (deployment.phaseState === 'awaiting_promote') {
            next = {
              ...deployment,
              status: 'in_progress',
              phaseState: 'rolling',
              phaseStartedAt: now,
              startedAt: deployment.startedAt ?? now,
              message: `Phase ${deployment.phases[deployment.phaseIndex]?.name ?? deployment.phaseIndex} promoted by an operator.`,
            };
          } else if (deployment.phaseState === 'soaking') {
            // Promote during a soak: the operator has seen enough, the next phase starts now.
            next = { ...deployment, soakUntil: now, message: 'Soak ended early by an operator.' };
          } else throw invalid(`its phase is ${deployment.phaseState}, not awaiting promote or soaking`);
          break;
        case 'rollback':
          if (deployment.status === 'rolled_back' || deployment.status === 'rolling_back') throw invalid(`it is already ${deployment.status}`);
          next = { ...deployment, status: 'rolling_back', phaseState: 'stopped', completedAt: undefined, message: 'Rollback requested by an operator: updated agents get signed rollback commands.' };
          stop = stopTargets(await this.#ctx.store.listTargets(deployment.id), now, 'the deployment is being rolled back');
          break;
      }
      next = { ...next, updatedAt: now };
      const eventType = { pause: 'paused', resume: 'resumed', abort: 'aborted', promote: 'promoted', rollback: 'rollback_started' }[action];
      const event: NewDeploymentEvent = { deploymentId, at: now, type: eventType, message: next.message, details: { actor: actor.name, ...(reason === undefined ? {} : { reason }) } };
      const audit = this.#ctx.audit.entry({
        event: `deployment.${action}`,
        actor: actor.name,
        tokenId: actor.tokenId,
        deploymentId,
        outcome: 'success',
        details: { from: deployment.status, to: next.status, skippedTargets: stop.skip.length, withdrawing: stop.withdraw.length, ...(reason === undefined ? {} : { reason }) },
      });
      await this.#ctx.store.writeRollout({ fence: this.#fence, deployment: next, targets: stop.skip, withdraw: stop.withdraw, events: [event], audit: [audit] });
      await this.#ctx.audit.flush();
      this.#ctx.logger.info({ event: `deployment.${action}`, deploymentId, status: next.status }, 'deployment action');
      return this.#status(next);
    }, true));
  }

  /** The deployment's status (CIRIS's DeploymentStatus plus every target). */
  async status(deploymentId: string): Promise<DeploymentStatus> {
    const deployment = await this.#ctx.store.getDeployment(deploymentId);
    if (deployment === undefined) throw new ManagerError('DEPLOYMENT_NOT_FOUND', `No deployment has id ${echo(deploymentId, DeploymentIdSchema, '(the given id)')}. List them with \`drover rollout status\`.`);
    return this.#status(deployment);
  }

  async #status(deployment: DeploymentRecord): Promise<DeploymentStatus> {
    const targets = await this.#ctx.store.listTargets(deployment.id);
    const events = await this.#ctx.store.listDeploymentEvents(deployment.id, 0, EVENTS_IN_STATUS, { latest: true });
    return deploymentStatusOf(deployment, targets, events);
  }

  // -- the tick

  // One tick of one deployment: read its open targets, probe push-mode agents, decide every
  // target's next state, start new targets within maxInFlight, queue rollback commands, store all
  // of it in one transaction, and only then act (audits, push calls) and move the phase on.
  async #drive(deployment: DeploymentRecord): Promise<void> {
    const now = this.#ctx.now();
    const rollingBack = deployment.status === 'rolling_back';
    // A rollback concerns every target that got the update, finished or not; otherwise only open ones move.
    // Pending targets of later phases cannot move this tick: they are not read; of this phase, only
    // as many as one tick may start (a phase of thousands is not read again at every tick).
    const views = await this.#ctx.store.listTargetViews(deployment.id, rollingBack ? {} : { open: true, phase: deployment.phaseIndex, pendingLimit: this.#startsPerTick });
    const tick = new TickChanges();

    const probes = await this.#probeUpdatingPushTargets(views);
    const rollbacks = this.#stepOpenTargets(deployment, views, probes, now, tick);
    const started: StartedTargets = { built: [], pushCalls: [] };
    if (deployment.status === 'in_progress' && deployment.phaseState === 'rolling') {
      await this.#startPendingTargets(deployment, views, now, tick, started);
      this.#askDeferredPushTargetsAgain(views, now, tick, started);
    }
    const rollbackBuilt = await this.#queueRollbackCommands(deployment, rollbacks, now, tick);
    await this.#storeAndAuditTick(deployment, now, tick, [...started.built, ...rollbackBuilt]);
    if (started.pushCalls.length > 0) await this.#push(deployment, started.pushCalls);
    await this.#advance(deployment, now);
  }

  // Push mode: probe the health of the agents being updated (reads only; #stepOpenTargets decides).
  async #probeUpdatingPushTargets(views: readonly TargetView[]): Promise<Map<string, AgentHealthProbe | undefined>> {
    const probing = views.filter((v) => v.mode === 'push' && v.rollbackState === undefined && (v.state === 'updating' || v.state === 'health_check'));
    const probes = new Map<string, AgentHealthProbe | undefined>();
    await pool(probing, this.#pushConcurrency, async (v) => {
      if (v.pushUrl !== undefined) probes.set(v.agentId, await probeHealth(this.#http, v.pushUrl));
    });
    return probes;
  }

  // Decides every open target's next state into `tick`; answers the updated daemon-mode targets a
  // rollback must reach (#queueRollbackCommands sends them their commands).
  #stepOpenTargets(
    deployment: DeploymentRecord,
    views: readonly TargetView[],
    probes: ReadonlyMap<string, AgentHealthProbe | undefined>,
    now: Date,
    tick: TickChanges,
  ): TargetView[] {
    const rollingBack = deployment.status === 'rolling_back';
    const staleAfterMs = Math.max(3 * this.#ctx.settings.checkinIntervalSeconds * 1000, 30_000);
    const rollbacks: TargetView[] = [];
    for (const view of views) {
      if (view.rollbackState === 'queued') {
        tick.take(this.#stepRollback(view, now));
        continue;
      }
      if (view.rollbackState !== undefined) continue;
      // A failed gate rolls back its own phase's updated agents; an operator's rollback every updated agent.
      if (rollingBack && view.mode === 'daemon' && installed(view) && (deployment.phaseState !== 'gate_failed' || view.phase === deployment.phaseIndex)) {
        rollbacks.push(view);
        continue;
      }
      if (isFinal(view)) continue;
      if (view.agentRevoked) {
        // Removed by an operator (drover agents remove): never started or never finished; not counted by the gate.
        tick.take({ next: { ...recordOf(view), state: 'skipped', errorCode: 'AGENT_REMOVED', message: `${view.agentId} was removed by an operator (drover agents remove)`, deferredUntil: undefined, updatedAt: now } });
        continue;
      }
      if (view.mode === 'daemon') {
        if (view.state !== 'pending') tick.take(stepDaemonTarget(view, deployment, now, staleAfterMs));
      } else if (view.state === 'updating' || view.state === 'health_check') {
        tick.take(stepPushProbe(view, deployment, probes.get(view.agentId), now));
      } else if (view.state === 'deferred') {
        tick.take(this.#expireDeferredPushTarget(recordOf(view), deployment, now));
      }
    }
    return rollbacks;
  }

  // Push mode: a deferred target fails once its deferral window or its deadline has passed.
  #expireDeferredPushTarget(target: TargetRecord, deployment: DeploymentRecord, now: Date): TargetStep | undefined {
    if (target.firstDeferredAt !== undefined && now.getTime() >= target.firstDeferredAt.getTime() + deployment.options.deferralWindowSeconds * 1000) {
      return failTarget(target, 'DEFERRAL_WINDOW_EXPIRED', `${target.agentId} stayed busy past the deferral window; it was not forced`, now);
    }
    if (target.deadlineAt !== undefined && now >= target.deadlineAt) {
      return failTarget(target, 'TARGET_DEADLINE_EXCEEDED', `${target.agentId} did not finish the update before its deadline`, now);
    }
    return undefined;
  }

  // Starts pending targets of the current phase while fewer than maxInFlight are under way, at most
  // startsPerTick in one tick (the next tick comes soon when more wait): a daemon-mode target gets
  // a signed update command, a push-mode one a shutdown call after the write.
  async #startPendingTargets(deployment: DeploymentRecord, views: readonly TargetView[], now: Date, tick: TickChanges, started: StartedTargets): Promise<void> {
    const inFlight = views.filter((v) => {
      const t = tick.current(v);
      return !isFinal(t) && t.state !== 'pending';
    }).length;
    let room = deployment.options.maxInFlight - inFlight;
    let starts = 0;
    const pendingRead = views.filter((v) => v.state === 'pending' && v.phase === deployment.phaseIndex).length;
    const releases = new Map<string, ReleaseRecord | undefined>();
    for (const view of views) {
      if (room <= 0) break;
      if (view.state !== 'pending' || view.phase !== deployment.phaseIndex || tick.changed.has(view.agentId)) continue;
      if (starts === this.#startsPerTick) break;
      starts++;
      room--;
      const target = recordOf(view);
      const notified: TargetRecord = {
        ...target,
        state: 'notified',
        attempts: target.attempts + 1,
        notifiedAt: now,
        deadlineAt: new Date(now.getTime() + deployment.options.targetDeadlineSeconds * 1000),
        updatedAt: now,
      };
      if (view.mode === 'push') {
        tick.changed.set(view.agentId, notified);
        started.pushCalls.push(notified);
        continue;
      }
      try {
        const agent = await this.#ctx.store.getAgent(view.agentId);
        if (agent === undefined) throw new ManagerError('AGENT_NOT_FOUND', `agent ${view.agentId} is gone`);
        const release = await this.#release(releases, deployment, agent);
        const update = await buildUpdate(
          this.#ctx,
          {
            agentId: view.agentId,
            deploymentId: deployment.id,
            artifact: deployment.artifact,
            version: deployment.version,
            deadlineSeconds: Math.ceil(deployment.options.targetDeadlineSeconds),
            // The daemon stops deferring when the engine would mark the target failed (decision 0012);
            // a rollback command (#queueRollbackCommands) carries no window: undoing a bad release is worth the whole deadline.
            deferralWindowSeconds: deployment.options.deferralWindowSeconds,
          },
          { agent, release },
        );
        started.built.push(update);
        tick.changed.set(view.agentId, { ...notified, commandId: update.record.id, fromVersion: update.fromVersion });
      } catch (error) {
        tick.take(failTarget(target, 'UPDATE_FAILED', `could not build the update command (${error instanceof ManagerError ? error.code : 'error'})`, now));
      }
    }
    // All it may start this tick, or a full window of pending views read with room left (some of
    // them skipped, their agents removed): more may wait beyond the window.
    if (starts === this.#startsPerTick || (pendingRead === this.#startsPerTick && room > 0)) this.#moreToStart = true;
  }

  // Push mode: deferred agents whose backoff has passed are asked again.
  #askDeferredPushTargetsAgain(views: readonly TargetView[], now: Date, tick: TickChanges, started: StartedTargets): void {
    for (const view of views) {
      if (view.mode !== 'push' || view.state !== 'deferred' || tick.changed.has(view.agentId)) continue;
      if (view.deferredUntil !== undefined && now < view.deferredUntil) continue;
      const again: TargetRecord = { ...recordOf(view), state: 'notified', attempts: view.attempts + 1, updatedAt: now };
      tick.changed.set(view.agentId, again);
      started.pushCalls.push(again);
    }
  }

  // Signed rollback commands for the updated agents of a failed gate, or of an operator's rollback.
  async #queueRollbackCommands(deployment: DeploymentRecord, rollbacks: readonly TargetView[], now: Date, tick: TickChanges): Promise<BuiltUpdate[]> {
    const built: BuiltUpdate[] = [];
    for (const view of rollbacks) {
      const target = tick.current(view);
      if (view.fromVersion === undefined) continue;
      try {
        const update = await buildUpdate(this.#ctx, {
          agentId: view.agentId,
          deploymentId: deployment.id,
          artifact: deployment.artifact,
          version: view.fromVersion,
          rollback: true,
          deadlineSeconds: Math.ceil(deployment.options.targetDeadlineSeconds),
        });
        built.push(update);
        tick.changed.set(view.agentId, { ...target, rollbackCommandId: update.record.id, rollbackState: 'queued', message: `rolling back to ${view.fromVersion}`, updatedAt: now });
        tick.decisions.push({ target, decision: { event: 'agent_rolled_back', message: `${view.agentId} gets a signed rollback command to ${view.fromVersion}`, details: { commandId: update.record.id, toVersion: view.fromVersion } } });
      } catch (error) {
        tick.changed.set(view.agentId, { ...target, rollbackState: 'failed', errorCode: 'ROLLBACK_FAILED', message: `could not build the rollback command (${error instanceof ManagerError ? error.code : 'error'}); publish ${view.fromVersion} for its platform`, updatedAt: now });
      }
    }
    return built;
  }

  // Persists every transition of the tick, the commands they send and their audit records, together.
  async #storeAndAuditTick(deployment: DeploymentRecord, now: Date, tick: TickChanges, commands: readonly BuiltUpdate[]): Promise<void> {
    const events: NewDeploymentEvent[] = tick.decisions
      .filter((d) => d.decision.event !== 'agent_accepted')
      .map((d) => ({ deploymentId: deployment.id, at: now, type: d.decision.event, message: d.decision.message, details: { agent_id: d.target.agentId, ...d.decision.details } }));
    const audit = [
      ...commands.map((b) => queuedAudit(this.#ctx, b, { name: 'system' })),
      ...tick.decisions.map(({ target, decision }) => this.#decisionAudit(deployment, target, decision)),
    ];
    if (tick.changed.size > 0 || commands.length > 0) {
      await this.#ctx.store.writeRollout({
        fence: this.#fence,
        targets: [...tick.changed.values()],
        commands: commands.map((b) => ({ command: b.record, nonce: b.nonce })),
        events,
        audit,
      });
    } else if (audit.length > 0) await this.#ctx.store.appendAudit(audit);
    await this.#flushAudit();
    for (const { target, decision } of tick.decisions) {
      this.#ctx.logger.info({ event: `deployment.${decision.event}`, deploymentId: deployment.id, agentId: target.agentId, state: target.state }, decision.message);
    }
  }

  // The audit flush a tick waits for, timed: that wait is not the engine's own time (see #pokeGapMs).
  async #flushAudit(): Promise<void> {
    const flushing = Date.now();
    await this.#ctx.audit.flush();
    this.#flushWaitMs += Date.now() - flushing;
  }

  async #release(cache: Map<string, ReleaseRecord | undefined>, deployment: DeploymentRecord, agent: AgentRecord): Promise<ReleaseRecord | undefined> {
    if (!cache.has(agent.platform)) cache.set(agent.platform, await this.#ctx.store.getRelease(deployment.artifact, versionKey(deployment.version), agent.platform));
    return cache.get(agent.platform);
  }

  #stepRollback(view: TargetView, now: Date): TargetStep | undefined {
    const target = recordOf(view);
    const outcome = view.rollbackCommand?.outcome;
    if (outcome === 'succeeded') {
      return {
        next: { ...target, state: 'rolled_back', rollbackState: 'succeeded', message: `rolled back to ${target.fromVersion ?? 'the previous version'}`, updatedAt: now },
        decision: { event: 'agent_rolled_back', message: `${target.agentId} is back on ${target.fromVersion ?? 'the previous version'}`, details: { done: true } },
      };
    }
    if (outcome !== undefined && outcome !== 'deferred') {
      return { next: { ...target, state: 'failed', rollbackState: 'failed', errorCode: 'ROLLBACK_FAILED', message: `the rollback command ended ${outcome}`, updatedAt: now } };
    }
    return undefined;
  }

  #decisionAudit(deployment: DeploymentRecord, target: TargetRecord, decision: TargetDecision): PendingAuditRecord {
    const outcome = decision.event === 'agent_accepted' ? 'accepted' : decision.event === 'agent_rejected' ? 'rejected' : decision.event === 'agent_deferred' ? 'deferred' : target.state;
    return this.#ctx.audit.entry({
      event: `deployment.${decision.event}`,
      actor: 'system',
      agentId: target.agentId,
      deploymentId: deployment.id,
      outcome,
      details: { state: target.state, toVersion: target.toVersion, ...(target.errorCode === undefined ? {} : { code: target.errorCode }), ...decision.details },
    });
  }

  /** The audit record of one use of an agent's service token by a push-mode shutdown call: its id, what the agent answered. */
  #tokenUseAudit(deployment: DeploymentRecord, target: TargetRecord, id: string, answer: ShutdownAnswer): PendingAuditRecord {
    const outcome = answer.kind === 'accepted' ? 'success' : answer.kind === 'unauthorized' ? 'denied' : answer.kind === 'busy' ? 'deferred' : 'failure';
    return this.#ctx.audit.entry({
      event: 'service_token.used',
      actor: 'system',
      agentId: target.agentId,
      deploymentId: deployment.id,
      tokenId: id,
      outcome,
      details: { route: 'POST /v1/system/shutdown', mode: 'push', answer: answer.kind, ...(answer.kind === 'refused' ? { status: answer.status } : {}) },
    });
  }

  /** What a push-mode agent's answer to the shutdown call does to its target. */
  #pushStep(deployment: DeploymentRecord, target: TargetRecord, answer: ShutdownAnswer, now: Date): TargetStep {
    switch (answer.kind) {
      case 'accepted':
        return { next: { ...target, state: 'updating', updatedAt: now }, decision: { event: 'agent_accepted', message: `${target.agentId} accepted the shutdown`, details: { mode: 'push' } } };
      case 'busy': {
        const deferrals = target.deferredCount + 1;
        const first = target.firstDeferredAt ?? now;
        if (now.getTime() >= first.getTime() + deployment.options.deferralWindowSeconds * 1000) {
          return failTarget({ ...target, deferredCount: deferrals, firstDeferredAt: first }, 'DEFERRAL_WINDOW_EXPIRED', `${target.agentId} stayed busy past the deferral window; it was not forced`, now);
        }
        const until = new Date(now.getTime() + deferralDelayMs(deferrals, deployment, answer.retryAfterSeconds));
        return {
          next: { ...target, state: 'deferred', deferredCount: deferrals, firstDeferredAt: first, deferredUntil: until, message: `busy (${answer.detail})`, updatedAt: now },
          decision: { event: 'agent_deferred', message: `${target.agentId} is busy; asking again at ${until.toISOString()}`, details: { deferrals, mode: 'push' } },
        };
      }
      case 'unauthorized':
        return failTarget(target, 'PUSH_UNAUTHORIZED', `${target.agentId} refused the manager's service token (401); re-enroll it or fix DROVER_SERVICE_TOKEN on the agent`, now);
      case 'refused':
        return failTarget(target, 'PUSH_REFUSED', `${target.agentId} answered the shutdown with ${answer.status} (${answer.detail})`, now);
      case 'unreachable':
        return failTarget(target, 'PUSH_UNREACHABLE', `${target.agentId} did not answer the shutdown call (${answer.detail})`, now);
    }
  }

  // Push mode: the transitions to `notified` are stored; now call each agent and store what it said.
  async #push(deployment: DeploymentRecord, targets: readonly TargetRecord[]): Promise<void> {
    const ctx = this.#ctx;
    const reason = shutdownReason({ version: deployment.version, commitSha: deployment.commitSha, deploymentId: deployment.id, changelog: deployment.changelog });
    const results = await pool(targets, this.#pushConcurrency, async (target): Promise<TargetStep & { tokenUse?: PendingAuditRecord }> => {
      const agent = await ctx.store.getAgentRolloutSettings(target.agentId);
      const now = ctx.now();
      if (agent?.pushUrl === undefined) return failTarget(target, 'PUSH_REFUSED', `${target.agentId} has no push URL any more`, now);
      let token: string;
      try {
        const record = await ctx.store.getAgent(target.agentId);
        if (record === undefined) return failTarget(target, 'PUSH_REFUSED', `${target.agentId} is gone`, now);
        token = ctx.fernet.decryptText(record.serviceTokenCiphertext);
      } catch {
        return failTarget(target, 'PUSH_REFUSED', `the service token of ${target.agentId} cannot be decrypted`, now);
      }
      const answer = await requestShutdown(this.#http, agent.pushUrl, token, reason);
      // Every use of a service token is audited with its id, never the token, whatever the agent answered (issue 15, C6).
      const tokenUse = this.#tokenUseAudit(deployment, target, tokenId(token), answer);
      return { ...this.#pushStep(deployment, target, answer, now), tokenUse };
    });
    const now = ctx.now();
    const events: NewDeploymentEvent[] = results
      .filter((r) => r.decision !== undefined && r.decision.event !== 'agent_accepted')
      .map((r) => ({ deploymentId: deployment.id, at: now, type: r.decision?.event ?? 'agent', message: r.decision?.message ?? '', details: { agent_id: r.next.agentId, ...r.decision?.details } }));
    const decided = results.flatMap((r) => (r.decision === undefined ? [] : [{ target: r.next, decision: r.decision }]));
    const tokenUses = results.flatMap((r) => (r.tokenUse === undefined ? [] : [r.tokenUse]));
    await ctx.store.writeRollout({ fence: this.#fence, targets: results.map((r) => r.next), events, audit: [...tokenUses, ...decided.map(({ target, decision }) => this.#decisionAudit(deployment, target, decision))] });
    await this.#flushAudit();
    for (const { target, decision } of decided) {
      ctx.logger.info({ event: `deployment.${decision.event}`, deploymentId: deployment.id, agentId: target.agentId, state: target.state }, decision.message);
    }
  }

  async #advance(before: DeploymentRecord, now: Date): Promise<void> {
    const ctx = this.#ctx;
    const deployment = (await ctx.store.getDeployment(before.id)) ?? before;
    const counts = await ctx.store.countTargets(deployment.id);
    const open = Object.entries(counts.byState).some(([state, n]) => n > 0 && !finalTargetStates.has(state as TargetRecord['state']));
    const views = deployment.status === 'rolling_back' || deployment.phaseState === 'gate_failed' ? await ctx.store.listTargetViews(deployment.id, { open: true }) : [];
    const rollbacksOpen = views.some((v) => v.rollbackState === 'queued') || views.some((v) => !isFinal(v));
    let next: DeploymentRecord | undefined;
    const events: NewDeploymentEvent[] = [];
    const audits: { event: string; outcome: string; details: JsonObject }[] = [];
    const event = (type: string, message: string, details: JsonObject = {}): void => {
      events.push({ deploymentId: deployment.id, at: now, type, message, details });
      audits.push({ event: `deployment.${type}`, outcome: type === 'gate_failed' || type === 'failed' ? 'failure' : 'success', details: { phase: deployment.phases[deployment.phaseIndex]?.name ?? null, ...details } });
    };
    let stopped: StoppedTargets = { skip: [], withdraw: [] };
    if (deployment.status === 'in_progress' && deployment.phaseState === 'soaking' && deployment.soakUntil !== undefined) {
      this.#tickWithin(deployment.soakUntil.getTime() - now.getTime());
    }

    if (deployment.status === 'in_progress' && deployment.phaseState === 'rolling') {
      const phaseCounts = counts.byPhase[deployment.phaseIndex] ?? {};
      const gate = evaluateGate(phaseCounts, deployment.options);
      const phaseName = deployment.phases[deployment.phaseIndex]?.name ?? String(deployment.phaseIndex);
      if (gate.verdict === 'passed') {
        const empty = gate.eligible === 0;
        const passed = empty ? `Phase ${phaseName} has no hosts: nothing to wait for.` : `Phase ${phaseName} passed its gate (${gate.succeeded}/${gate.eligible}).`;
        if (deployment.phaseIndex + 1 >= deployment.phases.length) {
          // The last phase: a soak waits before the next phase, and there is none.
          next = { ...deployment, status: 'completed', phaseState: 'done', soakUntil: undefined, message: `Rolled out ${deployment.version}: every phase passed its gate.` };
          event('phase_passed', passed, { succeeded: gate.succeeded, eligible: gate.eligible, soak_until: null });
          event('completed', next.message);
        } else {
          const soakSeconds = empty ? 0 : deployment.options.soakSeconds;
          next = { ...deployment, phaseState: 'soaking', soakUntil: new Date(now.getTime() + soakSeconds * 1000), message: soakSeconds > 0 ? `${passed} Soaking ${soakSeconds} s before the next phase.` : passed };
          event('phase_passed', next.message, { succeeded: gate.succeeded, eligible: gate.eligible, soak_until: next.soakUntil?.toISOString() ?? null });
        }
      } else if (gate.verdict === 'failed') {
        const rollback = deployment.options.autoRollback;
        next = {
          ...deployment,
          status: rollback ? 'rolling_back' : 'failed',
          phaseState: 'gate_failed',
          message: `Phase ${phaseName} failed its gate: ${gate.reason}.${rollback ? " Its updated agents get signed rollback commands." : ''} Later phases never start.`,
        };
        stopped = stopTargets(await ctx.store.listTargets(deployment.id), now, `phase ${phaseName} failed its gate`);
        event('gate_failed', next.message, { failed: gate.failed, succeeded: gate.succeeded, eligible: gate.eligible, auto_rollback: rollback });
      }
    } else if (deployment.status === 'in_progress' && deployment.phaseState === 'soaking' && deployment.soakUntil !== undefined && now >= deployment.soakUntil) {
      const nextPhase = deployment.phaseIndex + 1;
      if (nextPhase >= deployment.phases.length) {
        next = { ...deployment, status: 'completed', phaseState: 'done', message: `Rolled out ${deployment.version}: every phase passed its gate.` };
        event('completed', next.message);
      } else {
        const manual = deployment.strategy === 'manual';
        const name = deployment.phases[nextPhase]?.name ?? String(nextPhase);
        next = {
          ...deployment,
          phaseIndex: nextPhase,
          phaseState: manual ? 'awaiting_promote' : 'rolling',
          phaseStartedAt: manual ? undefined : now,
          soakUntil: undefined,
          message: manual ? `Phase ${name} waits for promote.` : `Phase ${name} started.`,
        };
        event(manual ? 'phase_awaiting_promote' : 'phase_started', next.message, { phase_name: name });
      }
    }

    // The end: a stopped, failed or completed deployment closes once none of its targets moves.
    const status = next?.status ?? deployment.status;
    const closing = !activeDeploymentStatuses.includes(status) || status === 'rolling_back';
    if (closing && next === undefined && deployment.completedAt === undefined && !open && !rollbacksOpen) {
      if (status === 'rolling_back') {
        const final = deployment.phaseState === 'gate_failed' ? 'failed' : 'rolled_back';
        next = { ...deployment, status: final, completedAt: now, message: `${deployment.message} Rollback finished.` };
        event(final === 'failed' ? 'failed' : 'rolled_back', next.message);
      } else {
        next = { ...deployment, completedAt: now };
        if (status === 'failed') event('failed', deployment.message);
      }
    }
    if (next === undefined) return;
    next = { ...next, updatedAt: now };
    if (next.status === 'completed' && !open) next.completedAt ??= now;
    const write: RolloutWrite = {
      deployment: next,
      targets: stopped.skip,
      withdraw: stopped.withdraw,
      events,
      audit: audits.map((audit) => ctx.audit.entry({ event: audit.event, actor: 'system', deploymentId: deployment.id, outcome: audit.outcome, details: audit.details })),
    };
    await ctx.store.writeRollout({ ...write, fence: this.#fence });
    await this.#flushAudit();
    // A gate decided, a phase started, a soak began: the next step is taken at once, not a tick later.
    this.#tickWithin(0);
    if (events.length > 0) ctx.logger.info({ event: 'deployment.transition', deploymentId: deployment.id, status: next.status, phase: next.phaseIndex, phaseState: next.phaseState }, next.message);
  }
}
