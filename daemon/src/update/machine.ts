import { rm } from 'node:fs/promises';
import { NonceError, ReleaseError, formatShutdownReason, verifyArtifactStream } from '@drover/protocol';
import { readFileChunks } from '@drover/protocol/internal';
import type { HttpClient } from '@drover/http';
import type { CommandOutcome, CommandResult, UpdateStep } from '@drover/protocol';
import type { AgentClient } from '../agent/client.js';
import type { Supervisor } from '../agent/supervisor.js';
import { limits } from '../config.js';
import { DaemonError, errorCode, errorMessage } from '../errors.js';
import { diskError, ensureRoom } from '../host/disk-errors.js';
import { pathExists } from '../host/fs-atomic.js';
import type { DaemonPaths } from '../host/paths.js';
import { clearBootRecord, readBootRecord, writeBootRecord } from '../launcher/boot-counter.js';
import type { Logger } from '../logger.js';
import type { Credentials } from '../manager-link/credentials.js';
import type { ReleaseStore } from '../releases/store.js';
import type { Settings } from '../settings.js';
import { boundedBackoff, isAbortError, sleep } from '../timing.js';
import { checkDeadline, checkDeferralWindow, deferredWaitMs } from './deadlines.js';
import { downloadArtifact, partIdentity, samePart } from './download.js';
import type { PartIdentity } from './download.js';
import type { Failpoints } from './failpoints.js';
import { passHealthGate } from './health-gate.js';
import type { Journal, UpdateRecord } from './journal.js';
import { verifyUpdateCommand } from './verify-command.js';

// The update state machine (DESIGN.md "Daemon update state machine"):
//
//   received -> command_verified -> downloading -> downloaded -> artifact_verified -> staged
//   -> draining [-> deferred] -> swapped -> starting -> health_check -> committed
//                                                                    | rolling_back -> rolled_back
//
// The journal records each step BEFORE its action runs, and every action is idempotent, so a
// droverd killed anywhere resumes from the journal and ends with a working agent (old or new) and
// the agent's configuration untouched: an update only ever writes under the state directory.
// Before the swap a failure abandons the update (the old agent keeps running); after it, the
// machine rolls back by itself. Every outcome is reported to the manager with the command's nonce.

/** What the {@link UpdateMachine} works with: the journal, the release store, the supervisor, the agent and manager clients. */
export interface UpdateMachineOptions {
  journal: Journal;
  store: ReleaseStore;
  supervisor: Supervisor;
  agent: AgentClient;
  /** The manager's HTTP client (downloads). */
  http: HttpClient;
  credentials: Credentials;
  machineId: string;
  settings: Settings;
  paths: DaemonPaths;
  daemonVersion: string;
  /** True when droverd was started by the launcher, which alone can undo a bad self-update. */
  underLauncher: boolean;
  failpoints: Failpoints;
  logger: Logger;
  /** There is something to report: check in now. */
  notify: () => void;
  /** Resolves true at the next successful check-in, false after `timeoutMs`. */
  waitForCheckin: (signal: AbortSignal, timeoutMs: number) => Promise<boolean>;
  /** Exits with code 75 so the service manager starts the daemon current/daemon now names. */
  restartDaemon: () => void;
}

const PRE_SWAP: ReadonlySet<UpdateStep> = new Set(['received', 'command_verified', 'downloading', 'downloaded', 'artifact_verified', 'staged', 'draining', 'deferred']);

/** True while the update has not touched what runs: a failure abandons it and the old agent stays. */
export function isPreSwap(step: UpdateStep): boolean {
  return PRE_SWAP.has(step);
}

// Refusals of what the command asks (bad signature, nonce, release, name) are `rejected`;
// failures to carry out a valid command (network, busy past the deadline or the deferral window) are `failed`.
function outcomeOf(error: unknown): CommandOutcome {
  if (error instanceof NonceError || error instanceof ReleaseError) return 'rejected';
  const code = errorCode(error);
  return ['COMMAND_INVALID', 'COMMAND_UNSUPPORTED', 'COMMAND_MISMATCH', 'DAEMON_TOO_OLD', 'TRUST_POLICY_MISSING', 'RELEASE_CONFLICT'].includes(code) ? 'rejected' : 'failed';
}

function detailOf(error: unknown): { code: string; message: string } {
  const code = errorCode(error);
  return { code: /^[A-Z][A-Z0-9_]{0,63}$/.test(code) ? code : 'INTERNAL_ERROR', message: errorMessage(error).slice(0, 4096) };
}

// A function, so the compiler does not narrow `signal.aborted` across awaits.
function aborted(signal: AbortSignal): boolean {
  return signal.aborted;
}

/** Carries an update through its journaled steps (download, verify, drain, swap, health gate, commit) and rolls back by itself after a failed swap. */
export class UpdateMachine {
  readonly #o: UpdateMachineOptions;
  readonly #logger: Logger;
  #retryAfterMs: number | undefined;
  // The .part this process downloaded and verified while writing it (download.ts), by command id.
  // In memory on purpose: after a restart nothing vouches for the file, and it is hashed again.
  #verifiedPart: { commandId: string; part: PartIdentity } | undefined;

  constructor(options: UpdateMachineOptions) {
    this.#o = options;
    this.#logger = options.logger.child({ component: 'drover:daemon:update', agentId: options.credentials.agentId });
  }

  /**
   * Called once at start, before the agent is started: cleans staging/ of crashed updates and
   * counts restarts inside starting/health_check (a new agent that keeps killing the daemon is
   * rolled back). Returns whether the daemon should start the installed agent now.
   */
  async recover(): Promise<{ startAgent: boolean }> {
    const { journal, store } = this.#o;
    const update = journal.update;
    await store.cleanStaging(update?.commandId);
    if (update === null) return { startAgent: true };
    this.#log(update).info({ event: 'update.resume', resumes: update.resumes }, 'Resuming the update in progress');
    if (update.artifact === 'agent' && (update.step === 'starting' || update.step === 'health_check')) {
      await journal.mutate((draft) => {
        if (draft.update !== null) draft.update.resumes += 1;
      });
      if (update.resumes + 1 > limits.maxResumesPerStep) {
        await this.#enter('rolling_back', (u) => {
          u.failure = { code: 'INTERRUPTED', message: `droverd restarted ${update.resumes + 1} times while the new agent was starting; the update was rolled back.` };
        });
      }
    }
    return { startAgent: isPreSwap(update.step) };
  }

  /** Drives the update in the journal until it ends or `signal` aborts (it resumes at the next start). */
  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      const update = this.#o.journal.update;
      if (update === null) return;
      try {
        await this.#advance(update, signal);
      } catch (error) {
        if (isAbortError(error) || aborted(signal)) return;
        await this.#onError(error, signal);
      }
    }
  }

  #log(update: UpdateRecord): Logger {
    return this.#logger.child({ commandId: update.commandId, artifact: update.artifact, deploymentId: update.verified?.deploymentId, step: update.step });
  }

  async #enter(step: UpdateStep, change?: Parameters<Journal['setStep']>[1]): Promise<UpdateRecord> {
    const update = await this.#o.journal.setStep(step, change);
    this.#log(update).info({ event: 'update.step' }, `Update step: ${step}`);
    this.#o.failpoints.hit(step);
    return update;
  }

  #after(step: UpdateStep): void {
    this.#o.failpoints.hit(`${step}:after`);
  }

  async #onError(thrown: unknown, signal: AbortSignal): Promise<void> {
    const update = this.#o.journal.update;
    if (update === null) return;
    // disk exhaustion: whichever step's write the disk refused (download, stage, swap, journal), the
    // manager hears DISK_FULL (or IO_ERROR) naming the state directory, not a network failure.
    const error = diskError(thrown, this.#o.paths.state) ?? thrown;
    const log = this.#log(update);
    if (isPreSwap(update.step)) {
      const outcome = outcomeOf(error);
      log.warn({ event: `update.${outcome}`, err: error, code: errorCode(error) }, outcome === 'rejected' ? 'The update was refused' : 'The update failed');
      await this.#abandon(update, outcome, detailOf(error));
      return;
    }
    if (update.step === 'swapped' || update.step === 'starting' || update.step === 'health_check') {
      log.warn({ event: 'update.rollback', err: error, code: errorCode(error) }, 'The new version failed; rolling back');
      await this.#enter('rolling_back', (u) => {
        u.failure = detailOf(error);
      });
      return;
    }
    // rolling_back, committed, rolled_back must complete: retry with a backoff.
    log.error({ event: 'update.retry', err: error }, 'A step that must complete failed; retrying');
    await sleep(boundedBackoff(update.resumes, 1_000, 30_000), signal);
    await this.#o.journal.mutate((draft) => {
      if (draft.update !== null) draft.update.resumes += 1;
    });
  }

  /** Ends an update that never swapped: the old agent keeps (or resumes) running. */
  async #abandon(update: UpdateRecord, outcome: CommandOutcome, detail: { code: string; message: string }): Promise<void> {
    try {
      // What the update wrote goes first: on a full disk that is the space the journal needs next.
      await rm(this.#o.store.partPath(update.commandId), { force: true });
      await this.#o.store.cleanStaging(undefined);
      const result: CommandResult = { commandId: update.commandId, outcome, detail, nonce: update.command.nonce };
      await this.#o.journal.finish(result, null);
    } finally {
      // Even when the disk refuses the journal too, the old agent runs (a drain may have stopped it).
      await this.#ensureAgentRunning();
    }
    this.#o.notify();
  }

  async #ensureAgentRunning(): Promise<void> {
    const { supervisor } = this.#o;
    supervisor.setAutoRestart(true);
    if (supervisor.running !== undefined) return;
    try {
      await supervisor.start();
    } catch (error) {
      this.#logger.error({ event: 'agent.start_failed', err: error }, 'The agent could not be started; retrying with a backoff');
    }
  }

  #target(update: UpdateRecord): { version: string; verified: NonNullable<UpdateRecord['verified']> } {
    if (update.verified === undefined) throw new DaemonError('STATE_CORRUPT', 'The journal has an update past command_verified without its verified release.');
    return { version: update.verified.manifest.version, verified: update.verified };
  }

  async #advance(update: UpdateRecord, signal: AbortSignal): Promise<void> {
    switch (update.step) {
      case 'received':
        return this.#verifyCommand(update);
      case 'command_verified':
        return this.#reuseOrDownload(update);
      case 'downloading':
        return this.#download(update, signal);
      case 'downloaded':
        return this.#verifyDownload(update);
      case 'artifact_verified':
        return this.#stage(update);
      case 'staged':
        // deadline: do not start stopping the agent for a command the manager gave up on.
        checkDeadline(update);
        await this.#enter('draining');
        return;
      case 'draining':
        return this.#drain(update, signal);
      case 'deferred':
        return this.#waitDeferred(update, signal);
      case 'swapped':
        return this.#swap(update);
      case 'starting':
        return this.#start(update);
      case 'health_check':
        return this.#healthCheck(update, signal);
      case 'committed':
        return this.#commit(update);
      case 'rolling_back':
        return this.#rollBack(update, signal);
      case 'rolled_back':
        return this.#rolledBack(update);
    }
  }

  // received -> command_verified: nothing in the command is acted on before this passes (verify-command.ts).
  async #verifyCommand(update: UpdateRecord): Promise<void> {
    const o = this.#o;
    const { nonce, manifest } = await verifyUpdateCommand(update, {
      credentials: o.credentials,
      machineId: o.machineId,
      trustPath: o.paths.trust,
      platform: o.settings.platform,
      daemonVersion: o.daemonVersion,
      underLauncher: o.underLauncher,
      isNonceUsed: (id) => o.journal.isNonceUsed(id),
    });
    // The nonce is spent in the same durable write that records the verified step.
    await this.#enter('command_verified', (u, draft) => {
      u.verified = { manifest, deploymentId: nonce.deploymentId, nonceId: nonce.nonceId, rollback: nonce.rollback };
      draft.usedNonces.push({ id: nonce.nonceId, exp: nonce.exp });
    });
  }

  // command_verified -> downloading (or straight to staged when this exact release is installed:
  // a rollback to a release kept on disk needs no download).
  async #reuseOrDownload(update: UpdateRecord): Promise<void> {
    const { version, verified } = this.#target(update);
    const installed = await this.#o.store.read(update.artifact, version);
    if (installed !== undefined && installed.file.sha256 === verified.manifest.file.sha256) {
      try {
        // tampering at rest: a kept release is re-hashed before it is trusted again.
        await this.#o.store.verifyFile(installed, verified.manifest.file);
        this.#after('command_verified');
        await this.#enter('staged');
        return;
      } catch (error) {
        this.#log(update).warn({ event: 'release.corrupt', err: error, version }, 'The kept release does not verify; downloading it again');
        await rm(installed.dir, { recursive: true, force: true });
      }
    }
    this.#after('command_verified');
    await this.#enter('downloading');
  }

  async #download(update: UpdateRecord, signal: AbortSignal): Promise<void> {
    const o = this.#o;
    const { verified } = this.#target(update);
    const base = new URL(o.credentials.managerUrl);
    const url = new URL(update.command.url, base);
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new DaemonError('COMMAND_INVALID', 'The download URL is not http(s).');
    // credential leak: the host's credential goes only to the manager itself, never to a CDN or another origin.
    // slow retrieval, endless data: a stall timeout, an overall limit, and a cap at the signed size (download.ts).
    const headers: Record<string, string> = url.origin === base.origin ? { authorization: `Bearer ${o.credentials.credential}`, 'x-machine-id': o.machineId } : {};
    const outcome = await downloadArtifact({
      http: o.http,
      url,
      headers,
      partPath: o.store.partPath(update.commandId),
      file: verified.manifest.file,
      stallTimeoutMs: o.settings.download.stallTimeoutMs,
      maxAttempts: o.settings.download.maxAttempts,
      maxDurationMs: o.settings.download.maxDurationMs,
      signal,
      logger: this.#log(update),
    });
    this.#verifiedPart = { commandId: update.commandId, part: outcome.part };
    this.#log(update).info({ event: 'download.done', bytes: outcome.bytes, attempts: outcome.attempts, resumedFrom: outcome.resumedFrom }, 'Artifact downloaded');
    this.#after('downloading');
    await this.#enter('downloaded');
  }

  // downloaded -> artifact_verified: the file on disk, the one that will be installed, is verified.
  async #verifyDownload(update: UpdateRecord): Promise<void> {
    const { verified } = this.#target(update);
    const part = this.#o.store.partPath(update.commandId);
    if (!(await pathExists(part))) {
      await this.#enter('downloading');
      return;
    }
    const inProcess = this.#verifiedPart?.commandId === update.commandId ? this.#verifiedPart.part : undefined;
    this.#verifiedPart = undefined;
    // the bytes verified are the bytes installed: this process hashed every byte of this very file
    // as it wrote it and fsynced it (download.ts, part-writer.ts); the same inode, size and mtime
    // say nothing wrote to it since. Otherwise (droverd restarted after the download) it is hashed again.
    const hashedWhileWritten = inProcess !== undefined && samePart(inProcess, await partIdentity(part));
    if (!hashedWhileWritten) {
      try {
        // endless data, tampering: exactly `size` bytes whose SHA-256 the signed manifest names.
        await verifyArtifactStream(readFileChunks(part, { limit: verified.manifest.file.size + 1 }), verified.manifest.file);
      } catch (error) {
        await rm(part, { force: true });
        throw error;
      }
    }
    this.#log(update).info({ event: 'artifact.verified', hashedWhileWritten }, hashedWhileWritten ? 'Artifact verified as it was downloaded' : 'Artifact verified by hashing the file again');
    this.#after('downloaded');
    await this.#enter('artifact_verified');
  }

  // artifact_verified -> staged. time-of-check/time-of-use: the verified file itself (same inode) is
  // moved into releases/<artifact>/<version>/, assembled in staging/ so releases/ never holds half a release.
  async #stage(update: UpdateRecord): Promise<void> {
    const { version, verified } = this.#target(update);
    const part = this.#o.store.partPath(update.commandId);
    if (!(await pathExists(part))) {
      // Already moved by a run that was killed before the journal said so, or lost: check, or download again.
      const installed = await this.#o.store.read(update.artifact, version);
      if (installed === undefined || installed.file.sha256 !== verified.manifest.file.sha256) {
        await this.#enter('downloading');
        return;
      }
    } else {
      await this.#o.store.install({ commandId: update.commandId, artifact: update.artifact, manifest: verified.manifest, envelope: update.command.release, source: part });
    }
    this.#after('artifact_verified');
    await this.#enter('staged');
  }

  // draining: ask the agent to stop through its shutdown route; a busy agent defers the update.
  async #drain(update: UpdateRecord, signal: AbortSignal): Promise<void> {
    const o = this.#o;
    const { version, verified } = this.#target(update);
    checkDeadline(update);
    // busy agent: past the command's deferral window the update is given up, not forced.
    checkDeferralWindow(update);
    // disk exhaustion: the agent is stopped only when the steps after it (the swap, the journal, a
    // rollback) have room to be written; else every retry of a refused write would stop it again.
    await ensureRoom(o.paths.state, limits.drainMinFreeBytes);
    const log = this.#log(update);
    let running = o.supervisor.running;
    if (running !== undefined) {
      const reason = formatShutdownReason({ version, deploymentId: verified.deploymentId, changelog: verified.manifest.changelog, commitSha: verified.manifest.commitSha });
      o.supervisor.setAutoRestart(false);
      let answer = await o.agent.shutdown(running.baseUrl, { reason, force: update.command.force }, signal);
      // An agent that was just (re)started may not listen yet: give it a moment before concluding.
      while (answer.kind === 'unreachable' && o.supervisor.running !== undefined && Date.now() - o.supervisor.running.startedAt < limits.agentRequestTimeoutMs * 2) {
        await sleep(limits.healthPollIntervalMs, signal);
        answer = await o.agent.shutdown(running.baseUrl, { reason, force: update.command.force }, signal);
      }
      running = o.supervisor.running;
      switch (answer.kind) {
        case 'accepted':
        case 'already': {
          o.supervisor.expectExit();
          const drainMs = update.command.drainTimeoutSeconds * 1000 + limits.drainExitMarginMs;
          if (!(await o.supervisor.waitForExit(drainMs, signal))) {
            log.warn({ event: 'agent.drain_timeout', afterMs: drainMs }, 'The agent accepted the shutdown but did not exit; stopping it');
            await o.supervisor.stop();
          }
          break;
        }
        case 'busy': {
          // busy agent: never forced (unless the command says force); report deferred and retry.
          o.supervisor.setAutoRestart(true);
          this.#retryAfterMs = answer.retryAfterMs;
          const message = `The agent is busy${answer.busyWith.length > 0 ? ` with ${answer.busyWith.join(', ')}` : ''}; the update is deferred and retried.`;
          await this.#enter('deferred', (u, draft) => {
            u.deferrals += 1;
            // The window's start is journaled once, so a restarted droverd keeps the same window.
            u.firstDeferredAt ??= new Date().toISOString();
            draft.pendingResults = [
              ...draft.pendingResults.filter((r) => r.commandId !== u.commandId),
              { commandId: u.commandId, outcome: 'deferred', detail: { code: 'AGENT_BUSY', message: message.slice(0, 4096) }, nonce: u.command.nonce },
            ];
          });
          o.notify();
          return;
        }
        case 'unreachable':
          log.warn({ event: 'agent.unreachable', err: answer.error }, 'The agent does not answer its shutdown route; stopping it with SIGTERM');
          if (running !== undefined) await o.supervisor.stop();
          break;
        case 'refused':
          o.supervisor.setAutoRestart(true);
          throw new DaemonError('DRAIN_FAILED', `The agent refused the shutdown request (HTTP ${answer.status}${answer.code === undefined ? '' : ` ${answer.code}`}). Check that it uses the service token droverd gives it.`);
      }
    }
    this.#after('draining');
    await this.#enter('swapped');
  }

  async #waitDeferred(update: UpdateRecord, signal: AbortSignal): Promise<void> {
    // deadline: a busy agent defers the update, but not past the command's deadline nor its deferral window.
    checkDeadline(update);
    checkDeferralWindow(update);
    // The agent's Retry-After is honoured, within the operator's deferBackoffMaxSeconds, the deadline and the window.
    const wait = deferredWaitMs(update, { maxMs: this.#o.settings.update.deferBackoffMaxMs, retryAfterMs: this.#retryAfterMs });
    this.#retryAfterMs = undefined;
    this.#log(update).info({ event: 'update.deferred', waitMs: wait, deferrals: update.deferrals }, 'The agent is busy; retrying the drain later');
    await sleep(wait, signal);
    this.#after('deferred');
    await this.#enter('draining');
  }

  // swapped. partial update: current/<artifact> flips by one rename(2) to the new release, so the host
  // runs the old or the new release, never a mix; previous/<artifact> keeps the old for the rollback.
  async #swap(update: UpdateRecord): Promise<void> {
    const o = this.#o;
    const { version } = this.#target(update);
    if (update.artifact === 'agent') {
      await o.store.activate('agent', version, update.fromVersion);
      this.#after('swapped');
      await this.#enter('starting');
      return;
    }
    if (o.daemonVersion === version) {
      // The new droverd is running: the flip was done by the old one.
      await this.#enter('starting');
      return;
    }
    const boots = await readBootRecord(o.paths.daemonBoots);
    if (boots?.commandId === update.commandId && boots.rolledBack) {
      await this.#enter('rolling_back', (u) => {
        u.failure = { code: 'DAEMON_BOOT_FAILED', message: `droverd ${version} failed to boot ${boots.boots} times; the launcher went back to ${update.fromVersion ?? 'the previous version'}.` };
      });
      return;
    }
    if (boots?.commandId !== update.commandId) {
      await writeBootRecord(o.paths.daemonBoots, { schema: 'drover.daemon-boots/v1', commandId: update.commandId, fromVersion: o.daemonVersion, toVersion: version, boots: 0, rolledBack: false });
    }
    await o.store.activate('daemon', version, update.fromVersion);
    this.#after('swapped');
    this.#log(update).info({ event: 'daemon.restart', version }, 'droverd swapped itself; exiting 75 so the new version starts');
    o.restartDaemon();
  }

  // starting. crash loop: the new agent is started once by the machine, not restarted behind its back.
  async #start(update: UpdateRecord): Promise<void> {
    const o = this.#o;
    const { version } = this.#target(update);
    if (update.artifact === 'daemon' && o.daemonVersion !== version) {
      await this.#enter('rolling_back', (u) => {
        u.failure = { code: 'DAEMON_BOOT_FAILED', message: `droverd ${version} did not stay up; the launcher went back to ${o.daemonVersion}.` };
      });
      return;
    }
    try {
      await o.supervisor.start();
    } catch (error) {
      if (update.artifact === 'agent') throw error;
      // A daemon update does not change the agent: an agent that cannot start is not the new daemon's fault.
      this.#log(update).error({ event: 'agent.start_failed', err: error }, 'The agent could not be started');
    }
    this.#after('starting');
    await this.#enter('health_check');
  }

  // health_check. bad release: signed is not the same as working; the new version must be healthy AT
  // its version for the grace period, or the host goes back to what ran before.
  async #healthCheck(update: UpdateRecord, signal: AbortSignal): Promise<void> {
    const o = this.#o;
    const { version } = this.#target(update);
    if (update.artifact === 'daemon') {
      if (o.daemonVersion !== version) {
        await this.#enter('rolling_back', (u) => {
          u.failure = { code: 'DAEMON_BOOT_FAILED', message: `droverd ${version} did not stay up; the launcher went back to ${o.daemonVersion}.` };
        });
        return;
      }
      if (o.supervisor.running === undefined) await this.#ensureAgentRunning();
      // The new droverd commits after its first successful check-in.
      if (!(await o.waitForCheckin(signal, o.settings.update.healthTimeoutMs))) {
        throw new DaemonError('HEALTH_CHECK_FAILED', `droverd ${version} could not check in with the manager within ${Math.round(o.settings.update.healthTimeoutMs / 1000)} s; it was rolled back.`);
      }
    } else {
      const running = o.supervisor.running ?? (await o.supervisor.start());
      const passed = await passHealthGate({
        agent: o.agent,
        running,
        version,
        graceMs: o.settings.update.healthGraceMs,
        timeoutMs: o.settings.update.healthTimeoutMs,
        pollMs: limits.healthPollIntervalMs,
        firstPollMs: limits.healthPollFirstMs,
        signal,
      });
      this.#log(update).info({ event: 'update.health_passed', firstHealthyMs: passed.healthyAfterMs, probes: passed.probes }, 'The new agent stayed healthy for the grace period');
    }
    this.#after('health_check');
    await this.#enter('committed');
  }

  // committed. disk exhaustion: releases beyond keepReleases are pruned, never current or previous.
  async #commit(update: UpdateRecord): Promise<void> {
    const o = this.#o;
    const { version } = this.#target(update);
    await this.#ensureAgentRunning();
    if (update.artifact === 'daemon') await clearBootRecord(o.paths.daemonBoots);
    const removed = await o.store.prune(update.artifact, o.settings.keepReleases);
    this.#after('committed');
    await o.journal.finish({ commandId: update.commandId, outcome: 'succeeded', detail: { message: `${update.artifact} ${version} is running and healthy.` }, nonce: update.command.nonce }, version);
    this.#log(update).info({ event: 'update.committed', version, pruned: removed }, 'Update committed');
    o.notify();
  }

  // rolling_back. bad release: current/<artifact> goes back to the version that ran before, which is
  // started and health-checked again; the failure is reported, never swallowed.
  async #rollBack(update: UpdateRecord, signal: AbortSignal): Promise<void> {
    const o = this.#o;
    const from = update.fromVersion;
    const log = this.#log(update);
    if (update.artifact === 'daemon') {
      if (from !== null) await o.store.pointCurrent('daemon', from);
      this.#after('rolling_back');
      if (from !== null && o.daemonVersion !== from) {
        log.warn({ event: 'daemon.restart', version: from }, 'Rolled current/daemon back; exiting 75 so the previous droverd starts');
        o.restartDaemon();
        return;
      }
      await this.#enter('rolled_back');
      return;
    }
    o.supervisor.setAutoRestart(false);
    await o.supervisor.stop();
    await o.store.pointCurrent('agent', from);
    this.#after('rolling_back');
    let problem: string | undefined;
    if (from !== null) {
      try {
        const running = await o.supervisor.start();
        await passHealthGate({
          agent: o.agent,
          running,
          version: from,
          graceMs: Math.min(o.settings.update.healthGraceMs, 2_000),
          timeoutMs: o.settings.update.healthTimeoutMs,
          pollMs: limits.healthPollIntervalMs,
          firstPollMs: limits.healthPollFirstMs,
          signal,
        });
      } catch (error) {
        if (signal.aborted) throw error;
        problem = errorMessage(error);
        log.error({ event: 'rollback.unhealthy', err: error }, 'The previous version is not healthy either; it stays installed and supervised');
      }
    }
    await this.#enter('rolled_back', (u) => {
      if (problem !== undefined) {
        u.failure = { code: 'ROLLBACK_FAILED', message: `${u.failure?.message ?? 'The update failed.'} The previous version did not come back healthy: ${problem}`.slice(0, 4096) };
      }
    });
  }

  async #rolledBack(update: UpdateRecord): Promise<void> {
    const o = this.#o;
    await this.#ensureAgentRunning();
    if (update.artifact === 'daemon') await clearBootRecord(o.paths.daemonBoots);
    const failure = update.failure ?? { code: 'INTERNAL_ERROR', message: 'The update was rolled back.' };
    this.#after('rolled_back');
    await o.journal.finish({ commandId: update.commandId, outcome: 'rolled_back', detail: failure, nonce: update.command.nonce }, update.fromVersion);
    this.#log(update).warn({ event: 'update.rolled_back', code: failure.code }, 'Update rolled back');
    o.notify();
  }
}
