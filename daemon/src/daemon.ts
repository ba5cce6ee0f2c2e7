import type { HttpClient } from '@drover/http';
import type { AgentHealthReport } from '@drover/protocol';
import type { Dispatcher } from 'undici';
import { AgentClient } from './agent/client.js';
import { prepareAgentAccount } from './agent/account.js';
import { Supervisor } from './agent/supervisor.js';
import { limits } from './config.js';
import { DaemonError } from './errors.js';
import { collectInventory } from './host/inventory.js';
import { acquireStateLock } from './host/lock.js';
import type { StateLock } from './host/lock.js';
import { resolveMachineId, systemMachineId } from './host/machine-id.js';
import type { MachineIdSource } from './host/machine-id.js';
import type { DaemonPaths } from './host/paths.js';
import { ServiceNotifier } from './host/service-notify.js';
import { TextfileMetrics } from './host/textfile-metrics.js';
import type { DaemonMetricsSnapshot } from './host/textfile-metrics.js';
import { readBootRecord } from './launcher/boot-counter.js';
import { createAgentHttp, createManagerHttp } from './http-clients.js';
import type { Logger } from './logger.js';
import { CheckinLoop } from './manager-link/check-in.js';
import { CredentialRotation } from './manager-link/credential-rotation.js';
import { loadCredentials, saveCredentials } from './manager-link/credentials.js';
import type { Credentials } from './manager-link/credentials.js';
import { enroll } from './manager-link/enroll.js';
import { ReleaseStore } from './releases/store.js';
import type { Settings } from './settings.js';
import { isAbortError, sleep } from './timing.js';
import { takeCommands } from './update/commands.js';
import { noFailpoints } from './update/failpoints.js';
import type { Failpoints } from './update/failpoints.js';
import { Journal } from './update/journal.js';
import { UpdateMachine } from './update/machine.js';
import { DAEMON_VERSION, NO_VERSION } from './version.js';

// `droverd run`: one daemon per state directory. It holds the lock, supervises the agent, checks
// in, and drives the update in the journal. SIGTERM stops it cleanly: loops end, the update stays
// in the journal (it resumes at the next start), and the agent gets SIGTERM and time to drain.

/** What a {@link Daemon} runs with: its paths, its settings (droverd.json), its logger. */
export interface DaemonOptions {
  paths: DaemonPaths;
  settings: Settings;
  logger: Logger;
  /** True when started by the launcher (self-update is possible only then). */
  underLauncher: boolean;
  failpoints?: Failpoints;
  machineIdSource?: MachineIdSource;
  /** An undici dispatcher for the manager's HTTP (tests inject one). */
  dispatcher?: Dispatcher;
  daemonVersion?: string;
  /** systemd's notifications (READY=1, WATCHDOG=1); default: from the process's environment. */
  notifier?: ServiceNotifier;
}

/** A running daemon; `done` resolves with the process exit code once it stopped. */
export class Daemon {
  readonly done: Promise<number>;
  readonly #o: DaemonOptions;
  readonly #controller = new AbortController();
  readonly #lock: StateLock;
  readonly #journal: Journal;
  readonly #supervisor: Supervisor;
  readonly #machine: UpdateMachine;
  readonly #checkins: CheckinLoop;
  readonly #http: HttpClient;
  readonly #agentHttp: HttpClient;
  readonly #logger: Logger;
  readonly #notifier: ServiceNotifier;
  #machineRunning: Promise<void> | undefined;
  #checkinRunning: Promise<void> | undefined;
  /** The probe that checks in once more when the agent first answers (see #checkInWhenAgentAnswers). */
  #firstAnswer: Promise<void> | undefined;
  #resolveDone: (code: number) => void = () => undefined;
  #stopping = false;
  /** droverd.prom for node_exporter, when metrics.textfileDir is set: its snapshot, and the refresh timer. */
  #textfile: { metrics: TextfileMetrics; snapshot: () => Promise<DaemonMetricsSnapshot>; timer: NodeJS.Timeout; failed: boolean } | undefined;

  private constructor(parts: {
    options: DaemonOptions;
    lock: StateLock;
    journal: Journal;
    supervisor: Supervisor;
    machineFactory: (daemon: Daemon) => UpdateMachine;
    checkinFactory: (daemon: Daemon) => CheckinLoop;
    http: HttpClient;
    agentHttp: HttpClient;
    notifier: ServiceNotifier;
  }) {
    this.#o = parts.options;
    this.#lock = parts.lock;
    this.#journal = parts.journal;
    this.#supervisor = parts.supervisor;
    this.#http = parts.http;
    this.#agentHttp = parts.agentHttp;
    this.#logger = parts.options.logger.child({ component: 'drover:daemon' });
    this.#notifier = parts.notifier;
    this.done = new Promise((resolve) => {
      this.#resolveDone = resolve;
    });
    this.#machine = parts.machineFactory(this);
    this.#checkins = parts.checkinFactory(this);
  }

  /** Takes the state lock, enrolls if configured to and not enrolled yet, then starts everything. */
  static async start(options: DaemonOptions): Promise<Daemon> {
    const { paths, settings } = options;
    const logger = options.logger;
    // systemd's watchdog runs from the process's start: ping from now on (a no-op outside systemd).
    const notifier = options.notifier ?? new ServiceNotifier({ logger });
    notifier.startWatchdog();
    let daemon: Daemon | undefined;
    const lock = await acquireStateLock(paths.state, {
      lockPath: paths.lock,
      ownerPath: paths.lockOwner,
      onCompromised: (error) => {
        logger.error({ event: 'lock.compromised', err: error }, 'The state lock was lost; stopping so two daemons never share the state');
        void daemon?.stop(1);
      },
    }).catch((error: unknown) => {
      notifier.close();
      throw error;
    });
    try {
      const daemonVersion = options.daemonVersion ?? DAEMON_VERSION;
      const store = new ReleaseStore(paths);
      await store.ensureLayout();
      const machineId = await resolveMachineId(settings.machineId, options.machineIdSource ?? systemMachineId);
      const http = createManagerHttp({ daemonVersion, logger, dispatcher: options.dispatcher });
      const agentHttp = createAgentHttp({ daemonVersion });
      const credentials = await ensureEnrolled({ paths, settings, logger, machineId, http, daemonVersion, store });
      const journal = await Journal.open(paths.journal, logger);
      const agentClient = new AgentClient(agentHttp, credentials.serviceToken);
      const failpoints = options.failpoints ?? noFailpoints;
      const account = await prepareAgentAccount(settings.agent, paths.state, logger);
      const supervisor = new Supervisor({ store, settings: settings.agent, serviceToken: credentials.serviceToken, runtimePath: paths.agentRuntime, stateDir: paths.state, logger, failpoints, account });
      daemon = new Daemon({
        options,
        lock,
        journal,
        supervisor,
        http,
        agentHttp,
        notifier,
        machineFactory: (self) =>
          new UpdateMachine({
            journal,
            store,
            supervisor,
            agent: agentClient,
            http,
            credentials,
            machineId,
            settings,
            paths,
            daemonVersion,
            underLauncher: options.underLauncher,
            failpoints,
            logger,
            notify: () => {
              self.#checkins.wake();
            },
            waitForCheckin: (signal, timeoutMs) => self.#checkins.waitForSuccess(signal, timeoutMs),
            restartDaemon: () => {
              void self.stop(75);
            },
          }),
        checkinFactory: (self) =>
          new CheckinLoop({
            http,
            credentials,
            machineId,
            journal,
            daemonVersion,
            agentVersion: async () => (await store.currentVersion('agent')) ?? NO_VERSION,
            health: () => self.#health(agentClient),
            onCommands: (commands) =>
              takeCommands(commands, {
                journal,
                store,
                daemonVersion,
                failpoints,
                logger,
                onUpdate: () => {
                  self.#kickMachine();
                },
              }),
            logger,
            backoffMaxMs: settings.checkin.backoffMaxMs,
            channelWaitSeconds: settings.checkin.channelWaitSeconds,
            rotation: new CredentialRotation({ http, credentials, path: paths.credentials, machineId, rotationMs: settings.checkin.credentialRotationMs, failpoints, logger }),
          }),
      });
      const started = daemon;
      if (settings.metrics.textfileDir !== undefined) {
        const startedAt = Date.now();
        started.#startTextfile(new TextfileMetrics(settings.metrics.textfileDir), async () => {
          const { update, lastResult } = journal.state;
          return {
            daemonVersion,
            agentVersion: await store.currentVersion('agent'),
            update: update === null ? undefined : { artifact: update.artifact, step: update.step, deferrals: update.deferrals },
            lastResult: lastResult === null ? undefined : { artifact: lastResult.artifact, outcome: lastResult.outcome, code: lastResult.detail.code ?? '', at: Date.parse(lastResult.at) },
            updateBoots: (await readBootRecord(paths.daemonBoots))?.boots ?? 0,
            startedAt,
          };
        });
      }
      logger.info({ event: 'daemon.started', version: daemonVersion, agentId: credentials.agentId, pid: process.pid, state: paths.state, underLauncher: options.underLauncher }, 'droverd started');
      // Agents a killed droverd left running, recorded or not (decision 0026): none may outlive this start.
      await supervisor.reapStrays('start');
      const { startAgent } = await started.#machine.recover();
      if (startAgent) {
        supervisor.setAutoRestart(true);
        try {
          await supervisor.start();
        } catch (error) {
          if (!(error instanceof DaemonError && error.code === 'AGENT_NOT_INSTALLED')) throw error;
          logger.warn({ event: 'agent.not_installed' }, 'No agent is installed yet; waiting for an update command');
        }
      }
      started.#checkinRunning = started.#checkins.run(started.#controller.signal);
      started.#kickMachine();
      // systemd's READY=1 (Type=notify): once the agent is supervised and has answered (or could not
      // within the first-answer wait), or now when there is no agent to start.
      if (startAgent && supervisor.running !== undefined) started.#firstAnswer = started.#checkInWhenAgentAnswers(agentClient);
      else started.#ready();
      return started;
    } catch (error) {
      notifier.close();
      await lock.release().catch(() => undefined);
      throw error;
    }
  }

  async #health(agent: AgentClient): Promise<AgentHealthReport> {
    const running = this.#supervisor.running;
    const checkedAt = new Date().toISOString();
    if (running === undefined) return { status: 'stopped', busy: false, checkedAt };
    const answer = await agent.health(running.baseUrl, this.#controller.signal);
    if (answer.kind !== 'ok') return { status: 'unreachable', busy: false, checkedAt };
    return { status: answer.health.status, version: answer.health.version, busy: answer.health.busy, checkedAt };
  }

  /**
   * The first check-in goes out while the agent is still starting, and would report it unreachable
   * until the next one, a whole interval later. One more check-in as soon as it answers its health
   * route lets the manager see the host as it is within seconds of droverd's start.
   */
  async #checkInWhenAgentAnswers(agent: AgentClient): Promise<void> {
    const signal = this.#controller.signal;
    const deadline = Date.now() + limits.agentFirstAnswerWaitMs;
    try {
      while (Date.now() < deadline) {
        const running = this.#supervisor.running;
        const answer = running === undefined ? undefined : await agent.health(running.baseUrl, signal);
        // An agent still warming up reports `starting`: wait for what it says once it is up.
        if (answer?.kind === 'ok' && answer.health.status !== 'starting') {
          this.#checkins.wake();
          this.#ready(`supervising agent ${answer.health.version} (${answer.health.status})`);
          return;
        }
        await sleep(limits.agentFirstAnswerPollMs, signal);
      }
    } catch (error) {
      if (!isAbortError(error)) this.#logger.debug({ event: 'agent.first_answer_probe_failed', err: error }, 'Could not probe the agent after its start');
    }
    if (!signal.aborted) this.#ready('supervising the agent (it has not answered its health route yet)');
  }

  /** Writes droverd.prom now and every metricsTextfileIntervalMs (only when it changed). */
  #startTextfile(metrics: TextfileMetrics, snapshot: () => Promise<DaemonMetricsSnapshot>): void {
    const timer = setInterval(() => void this.#writeTextfile(), limits.metricsTextfileIntervalMs);
    timer.unref();
    this.#textfile = { metrics, snapshot, timer, failed: false };
    void this.#writeTextfile();
  }

  async #writeTextfile(): Promise<void> {
    const textfile = this.#textfile;
    if (textfile === undefined) return;
    try {
      await textfile.metrics.write(await textfile.snapshot());
      textfile.failed = false;
    } catch (error) {
      // Metrics never stop droverd: a full or missing directory is logged once until a write works again.
      if (!textfile.failed) this.#logger.warn({ event: 'metrics.textfile_failed', path: textfile.metrics.path, err: error }, 'Could not write the metrics file for node_exporter; retrying');
      textfile.failed = true;
    }
  }

  /** Tells systemd droverd is up (READY=1) and starts the watchdog pings (WATCHDOG=1); a no-op outside systemd. */
  #ready(status?: string): void {
    const running = this.#supervisor.running;
    this.#notifier.ready(status ?? (running === undefined ? 'running; no agent is installed' : 'supervising the agent'));
  }

  #kickMachine(): void {
    if (this.#machineRunning !== undefined || this.#journal.update === null || this.#controller.signal.aborted) return;
    this.#machineRunning = this.#machine
      .run(this.#controller.signal)
      .catch((error: unknown) => {
        this.#logger.error({ event: 'update.crashed', err: error }, 'The update machine failed unexpectedly');
      })
      .finally(() => {
        this.#machineRunning = undefined;
        if (this.#journal.update !== null && !this.#controller.signal.aborted) setTimeout(() => {
          this.#kickMachine();
        }, 1_000).unref();
      });
  }

  /**
   * Stops the daemon: ends the loops (an update in progress stays in the journal), forwards
   * SIGTERM to the agent and waits for it, releases the lock. Resolves `done` with `code`.
   */
  async stop(code = 0): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#controller.abort();
    this.#logger.info({ event: 'daemon.stopping', code }, 'droverd is stopping');
    this.#supervisor.close();
    await Promise.allSettled([this.#machineRunning, this.#checkinRunning, this.#firstAnswer]);
    await this.#supervisor.stop(this.#o.settings.agent.stopTimeoutMs);
    if (this.#textfile !== undefined) {
      clearInterval(this.#textfile.timer);
      // The last word: the step the update stopped at stays in the journal, and in the file.
      await this.#writeTextfile();
    }
    await Promise.allSettled([this.#http.close(), this.#agentHttp.close()]);
    await this.#lock.release().catch(() => undefined);
    // The watchdog pings go on while the agent drains: a stop droverd starts itself (a self-update's
    // exit 75) is still "running" to systemd, and its watchdog still counts. No STOPPING=1: it would
    // add nothing to a stop systemd asked for, and a self-update's exit must stay a restart.
    this.#notifier.close();
    this.#logger.info({ event: 'daemon.stopped', code }, 'droverd stopped');
    this.#resolveDone(code);
  }
}

async function ensureEnrolled(input: {
  paths: DaemonPaths;
  settings: Settings;
  logger: Logger;
  machineId: string;
  http: HttpClient;
  daemonVersion: string;
  store: ReleaseStore;
}): Promise<Credentials> {
  const { paths, settings, logger, machineId } = input;
  const existing = await loadCredentials(paths.credentials);
  if (existing !== undefined) {
    if (existing.machineId !== machineId) {
      throw new DaemonError('NOT_ENROLLED', `${paths.credentials} was issued to another machine (its machine id differs). Remove it and enroll this host (droverd enroll).`);
    }
    return existing;
  }
  const { url, enrollmentToken } = settings.manager;
  if (url === undefined || enrollmentToken === undefined) {
    throw new DaemonError('NOT_ENROLLED', 'This host is not enrolled. Run `droverd enroll --manager URL --token T --manager-key K`, or set manager.url and manager.enrollmentToken in droverd.json.');
  }
  const credentials = await enroll({
    http: input.http,
    managerUrl: url,
    enrollmentToken,
    pinnedKey: settings.manager.key,
    tofu: settings.manager.tofu,
    machineId,
    platform: settings.platform,
    agentVersion: (await input.store.currentVersion('agent')) ?? NO_VERSION,
    daemonVersion: input.daemonVersion,
    inventory: () => collectInventory(logger, limits.inventoryTimeoutMs),
    logger,
    // A host provisioned before its manager is reachable waits for it, not for systemd's start limit.
    untilTaken: true,
  });
  await saveCredentials(paths.credentials, credentials);
  logger.info({ event: 'enroll.done', agentId: credentials.agentId, trust: credentials.trust }, 'Enrolled with the manager');
  return credentials;
}

