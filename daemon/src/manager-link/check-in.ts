import { CheckinResponseSchema, CheckinUpgradeRequiredSchema, matchesSchema } from '@drover/protocol';
import type { AgentHealthReport, CheckinRequest, CommandResult, DaemonState } from '@drover/protocol';
import { limits } from '../config.js';
import { DaemonError } from '../errors.js';
import type { CredentialRotation } from './credential-rotation.js';
import type { Credentials } from './credentials.js';
import type { HttpClient } from '@drover/http';
import { endpoint, retryDelay } from '@drover/http';
import { managerCallError } from '../http-clients.js';
import type { Logger } from '../logger.js';
import { isAbortError, sleep, withJitter } from '../timing.js';
import type { Journal } from '../update/journal.js';

// Check-ins: the daemon reports its state, its agent's health, the commands it took (acks) and
// the outcomes not yet confirmed (results), and receives commands. Intervals carry jitter so a
// fleet spreads out; while the manager is unreachable the delay backs off exponentially. Acks and
// results live in the journal until a check-in carrying them gets a 200, so none is lost to a crash.
//
// The command channel (decision 0041): each check-in asks the manager to hold it while there is
// no command (X-Drover-Wait), so a command arrives the moment it is made. A manager that holds
// check-ins says so in its answer's X-Drover-Wait; the daemon then checks in again at once (after
// up to half a second at random, so a restarted manager is not stormed). Without that header (an
// older manager, the channel off) it waits the interval; after a 503 CHANNEL_FULL it checks in
// without waiting until the Retry-After has passed.

/** What the {@link CheckinLoop} needs: the HTTP client, the credentials, the journal, and what to do with commands. */
export interface CheckinLoopOptions {
  http: HttpClient;
  credentials: Credentials;
  machineId: string;
  journal: Journal;
  daemonVersion: string;
  agentVersion: () => Promise<string>;
  health: () => Promise<AgentHealthReport>;
  /** Handles the commands of a check-in (already shape-checked as command stubs). */
  onCommands: (commands: unknown[]) => Promise<void>;
  logger: Logger;
  backoffMaxMs: number;
  /** Rotates the credential after accepted check-ins, and goes back on a refused rotated one (decision 0032). */
  rotation?: CredentialRotation;
  /**
   * The command channel (decision 0041): seconds each check-in lets the manager hold it while it
   * has no command; 0 or absent: check in at the manager's interval only.
   */
  channelWaitSeconds?: number;
  random?: () => number;
}

// A function, so the compiler does not narrow `signal.aborted` across awaits.
function aborted(signal: AbortSignal): boolean {
  return signal.aborted;
}

/** Checks in with the manager at its interval (jittered, backing off while it is unreachable) and hands the commands it gets on. */
export class CheckinLoop {
  readonly #o: CheckinLoopOptions;
  readonly #logger: Logger;
  #wake: (() => void) | undefined;
  #wakeRequested = false;
  #failures = 0;
  /** The Retry-After of the last check-in the manager answered 429 or 503 (after the HTTP layer's own retries). */
  #retryAfter: string | string[] | undefined;
  #successWaiters = new Set<() => void>();
  /** Until when (ms) check-ins do not ask to be held: the manager's channel was full. */
  #channelPausedUntil = 0;
  /** Aborts the check-in being held, if one is. */
  #hold: AbortController | undefined;
  /** The manager said it holds check-ins (X-Drover-Wait on its answer to one that asked). */
  #channelSeen = false;
  /** When the check-in under way was sent asking to be held (undefined: it did not ask). */
  #heldSince: number | undefined;

  constructor(options: CheckinLoopOptions) {
    this.#o = options;
    this.#logger = options.logger.child({ component: 'drover:daemon:checkin', agentId: options.credentials.agentId });
  }

  /** Checks in now instead of at the next interval (results to report), cutting a held check-in short. */
  wake(): void {
    this.#wakeRequested = true;
    this.#wake?.();
    this.#hold?.abort();
  }

  /** Resolves true at the next successful check-in, false after `timeoutMs` (or on abort). */
  waitForSuccess(signal: AbortSignal, timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const done = (value: boolean): void => {
        clearTimeout(timer);
        this.#successWaiters.delete(onSuccess);
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      };
      const onSuccess = (): void => {
        done(true);
      };
      const onAbort = (): void => {
        done(false);
      };
      const timer = setTimeout(() => {
        done(false);
      }, timeoutMs);
      this.#successWaiters.add(onSuccess);
      signal.addEventListener('abort', onAbort, { once: true });
      this.wake();
    });
  }

  #takeWake(): boolean {
    const requested = this.#wakeRequested;
    this.#wakeRequested = false;
    return requested;
  }

  /** Runs until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      this.#takeWake();
      let waitMs: number;
      try {
        const next = await this.checkInOnce(signal);
        this.#failures = 0;
        waitMs = withJitter(next * 1000, limits.checkinJitterRatio, this.#o.random);
      } catch (error) {
        if (isAbortError(error) || aborted(signal)) return;
        // A check-in the manager held for a while and then lost (a replica killed, a proxy's idle
        // timeout shorter than the wait) costs one reconnection, not a step up the backoff: the
        // manager was there. A manager that is down refuses the next one at once, which does count.
        const held = this.#heldSince !== undefined && Date.now() - this.#heldSince >= limits.checkinHeldCutMs;
        if (held) this.#failures = 0;
        this.#failures += 1;
        // The backoff, or the Retry-After of an overloaded manager when longer, spread by up to half of
        // it: a fleet that reconnects after an outage and is told to wait comes back over a while.
        const policy = { maxAttempts: 1, backoffBaseMs: limits.checkinBackoffBaseMs, backoffMaxMs: this.#o.backoffMaxMs, retryAfterMaxMs: limits.httpRetryAfterMaxMs };
        // retryDelay counts attempts from 0: the first failure waits up to checkinBackoffBaseMs.
        waitMs = Math.max(limits.checkinBackoffBaseMs / 2, retryDelay(policy, this.#failures - 1, this.#retryAfter, this.#o.random));
        this.#logger.warn({ event: 'checkin.failed', err: error, failures: this.#failures, retryInMs: waitMs }, 'Check-in failed; backing off');
        // While the manager is unreachable, a wake-up does not cut the backoff short.
        try {
          await sleep(waitMs, signal);
        } catch {
          return;
        }
        continue;
      }
      if (this.#takeWake()) continue;
      // Aborted while the check-in's answer was being handled: an abort listener added now would never fire.
      if (aborted(signal)) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(finish, waitMs);
        function finish(): void {
          clearTimeout(timer);
          signal.removeEventListener('abort', finish);
          resolve();
        }
        this.#wake = finish;
        signal.addEventListener('abort', finish, { once: true });
      });
      this.#wake = undefined;
    }
  }

  /** One check-in; resolves with the seconds until the next one. */
  async checkInOnce(signal?: AbortSignal, depth = 0): Promise<number> {
    const o = this.#o;
    const journal = o.journal.state;
    const acks = journal.pendingAcks.slice(0, 64);
    const results: CommandResult[] = journal.pendingResults.slice(0, 64);
    const update = journal.update;
    // Held only with nothing to report: acks and results go out (and are confirmed) at once.
    // Nor with a credential rotation to do after it (decision 0032).
    const idle = acks.length === 0 && results.length === 0 && o.rotation?.pending !== true;
    const wait = (o.channelWaitSeconds ?? 0) > 0 && Date.now() >= this.#channelPausedUntil && idle ? (o.channelWaitSeconds ?? 0) : 0;
    // A held check-in is cut short by wake() (a result to report) or by `signal`; armed before the
    // awaits below, so a wake() during them is not missed (the request then ends before it starts).
    const hold = wait > 0 ? new AbortController() : undefined;
    const onAbort = (): void => {
      hold?.abort();
    };
    if (hold !== undefined) {
      this.#hold = hold;
      signal?.addEventListener('abort', onAbort, { once: true });
    }
    const release = (): void => {
      signal?.removeEventListener('abort', onAbort);
      if (this.#hold === hold) this.#hold = undefined;
    };
    let agentVersion: string;
    let body: CheckinRequest;
    try {
      agentVersion = await o.agentVersion();
      const state: DaemonState = {
        agentVersion,
        daemonVersion: o.daemonVersion,
        ...(update === null ? {} : { update: { commandId: update.commandId, step: update.step, nonce: update.command.nonce } }),
      };
      body = { state, health: await o.health(), acks, results };
    } catch (error) {
      release();
      throw error;
    }
    const nonce = update?.command.nonce ?? results.find((r) => r.nonce !== undefined)?.nonce;
    this.#retryAfter = undefined;
    this.#heldSince = wait > 0 ? Date.now() : undefined;
    const response = await o.http
      .json({
        method: 'POST',
        url: endpoint(o.credentials.managerUrl, `/v1/agents/${encodeURIComponent(o.credentials.agentId)}/checkin`),
        headers: {
          authorization: `Bearer ${o.credentials.credential}`,
          'x-machine-id': o.machineId,
          'x-agent-version': agentVersion,
          'x-daemon-version': o.daemonVersion,
          ...(nonce === undefined ? {} : { 'x-update-nonce': nonce }),
          ...(wait === 0 ? {} : { 'x-drover-wait': String(wait) }),
        },
        json: body,
        // A held check-in answers within its wait: the response timeout covers it.
        ...(wait === 0 ? {} : { timeoutMs: wait * 1000 + limits.checkinChannelSlackMs }),
        // A check-in may be sent twice: it is a report the daemon repeats until a 200, and a result the
        // manager already recorded comes back NONCE_REPLAYED, handled below (docs/decisions/0008).
        idempotent: true,
        ...(hold !== undefined ? { signal: hold.signal } : signal === undefined ? {} : { signal }),
      })
      .catch((error: unknown) => {
        throw managerCallError(error);
      })
      .finally(release)
      .catch((error: unknown) => {
        // Cut short by wake(): check in again now, with what there is to report.
        if (hold?.signal.aborted === true && signal?.aborted !== true) return undefined;
        throw error;
      });
    if (response === undefined) return 0;
    if (response.status !== 200 && response.status !== 426) {
      const error = (response.body as { error?: { code?: unknown; commandId?: unknown } } | undefined)?.error;
      const code = typeof error?.code === 'string' ? error.code.slice(0, 64) : `HTTP_${response.status}`;
      const refused = error?.commandId;
      // A rotated credential the manager refuses: back to the previous one, and check in with it.
      if (o.rotation !== undefined && depth < 64 && (await o.rotation.afterRefused(response.status, code))) return this.checkInOnce(signal, depth + 1);
      if (response.status >= 400 && response.status < 500 && typeof refused === 'string' && results.some((r) => r.commandId === refused) && depth < 64) {
        // The manager refused one result, and with it the whole check-in (docs/decisions/0008). It
        // can never accept that result (NONCE_REPLAYED: it already holds an outcome for the nonce),
        // so the result is dropped and the check-in made again without it.
        this.#logger.warn({ event: 'checkin.result_refused', commandId: refused, code, status: response.status }, 'The manager refused a result; dropping it');
        await o.journal.mutate((draft) => {
          draft.pendingResults = draft.pendingResults.filter((r) => r.commandId !== refused);
        });
        return this.checkInOnce(signal, depth + 1);
      }
      if (response.status === 503 && code === 'CHANNEL_FULL' && depth < 64) {
        // Nothing was recorded: check in again now, without asking to be held, until Retry-After.
        const policy = { maxAttempts: 1, backoffBaseMs: limits.checkinBackoffBaseMs, backoffMaxMs: this.#o.backoffMaxMs, retryAfterMaxMs: limits.httpRetryAfterMaxMs };
        this.#channelPausedUntil = Date.now() + retryDelay(policy, 1, response.headers['retry-after'], this.#o.random);
        this.#logger.info({ event: 'checkin.channel_full', retryInMs: this.#channelPausedUntil - Date.now() }, 'The manager holds no more check-ins; checking in at the interval for now');
        return this.checkInOnce(signal, depth + 1);
      }
      if (response.status === 429 || response.status === 503) this.#retryAfter = response.headers['retry-after'];
      const hint =
        code === 'AGENT_REVOKED'
          ? 'An operator removed this host (drover agents remove); to bring it back, enroll it again with a new enrollment token (droverd enroll --force).'
          : response.status === 401
            ? 'The credential is not valid: enroll again.'
            : response.status === 403
              ? 'The machine id differs from the enrolled one.'
              : 'It is retried.';
      throw new DaemonError('MANAGER_REFUSED', `The manager refused the check-in (HTTP ${response.status}, ${code}). ${hint}`);
    }
    const valid = response.status === 200 ? matchesSchema(CheckinResponseSchema, response.body) : matchesSchema(CheckinUpgradeRequiredSchema, response.body);
    if (!valid) throw new DaemonError('RESPONSE_INVALID', 'The manager\'s check-in answer is malformed; it is retried.');
    const answer = response.body as { commands: unknown[]; nextCheckinSeconds: number };
    if (response.status === 426) this.#logger.warn({ event: 'checkin.upgrade_required' }, 'The manager says this agent is below its minimum version; its update commands follow');
    // Acks and results the manager now holds are dropped from the journal, in one write.
    await o.journal.mutate((draft) => {
      draft.pendingAcks = draft.pendingAcks.filter((id) => !acks.includes(id));
      draft.pendingResults = draft.pendingResults.filter((r) => !results.some((sent) => sent.commandId === r.commandId && sent.outcome === r.outcome));
    });
    for (const resolve of [...this.#successWaiters]) resolve();
    if (answer.commands.length > 0) await o.onCommands(answer.commands);
    // A new credential is used at once: its first check-in makes it the only one the manager accepts.
    if (o.rotation !== undefined && (await o.rotation.afterAccepted(signal))) this.#wakeRequested = true;
    // The manager holds check-ins (its answer to one that asked says so): the next one goes at once,
    // to be held in turn; so does the one after a report, while the channel is known to be there.
    if (wait > 0) this.#channelSeen = response.status === 200 && response.headers['x-drover-wait'] !== undefined;
    const channelOpen = (o.channelWaitSeconds ?? 0) > 0 && Date.now() >= this.#channelPausedUntil && this.#channelSeen;
    if (response.status === 200 && channelOpen && (wait > 0 || !idle)) return ((o.random ?? Math.random)() * limits.checkinChannelJitterMs) / 1000;
    return answer.nextCheckinSeconds;
  }
}
