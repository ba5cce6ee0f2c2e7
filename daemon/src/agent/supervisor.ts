import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { limits } from '../config.js';
import { DaemonError } from '../errors.js';
import { readJsonFile, writeJsonAtomic } from '../host/fs-atomic.js';
import { currentIdentity, isAlive, parseIdentity, processStat } from '../host/process-identity.js';
import type { ProcessIdentity } from '../host/process-identity.js';
import type { Logger } from '../logger.js';
import type { InstalledRelease, ReleaseStore } from '../releases/store.js';
import type { AgentSettings } from '../settings.js';
import { sleep } from '../timing.js';
import { noFailpoints } from '../update/failpoints.js';
import type { Failpoints } from '../update/failpoints.js';
import { checkAgentCanExecute, checkAgentCanReach } from './account.js';
import type { AgentAccount } from './account.js';
import { INSTANCE_ENV, findMarked, findMarkedAs, installTag, newInstance, stopProcesses } from './strays.js';
import type { MarkedProcess } from './strays.js';

// Runs the agent: `current/agent`'s entry point with the service token and DROVER_CONFIG_DIR, in
// an environment of its own (the daemon's environment, with its proxy settings and failpoints,
// is not passed on). Outside an update it restarts a dead agent with exponential backoff; during
// an update the update machine owns the agent's life and automatic restarts are off.
//
// Crash safety across spawn (decision 0026): before the spawn, agent.json records the intent (a new
// instance id and the version); the agent is spawned leading its own process group, with the
// instance id in its environment (DROVER_AGENT_INSTANCE); then agent.json records its pid. A droverd
// killed anywhere in between leaves a process the next droverd finds by that mark in /proc and stops
// (strays.ts): at start, before each agent start and after each stop, every marked process of this
// install that is not the agent supervised now is stopped, so exactly one agent runs afterwards.

/** How the agent process ended: its exit code, or the signal that killed it. */
export interface AgentExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** The agent process droverd runs: its pid, version, port and base URL, and when it exits. */
export interface RunningAgent {
  pid: number;
  /** Its DROVER_AGENT_INSTANCE mark: `<install tag>-<instance id>`. */
  instance: string;
  version: string;
  port: number;
  baseUrl: string;
  startedAt: number; // ms since the epoch
  exited: Promise<AgentExit>;
}

/** What the {@link Supervisor} runs and how: the release store, the agent settings, its service token. */
export interface SupervisorOptions {
  store: ReleaseStore;
  settings: AgentSettings;
  serviceToken: string;
  runtimePath: string;
  logger: Logger;
  /** The state directory: its path is hashed into every agent's mark (two installs never see each other's agents). */
  stateDir: string;
  /** The Node.js that runs .js entry points (default: the one running droverd). */
  nodePath?: string;
  /** Crash tests' kill points around the spawn (agent:before-intent ... agent:recorded, qualified by version). */
  failpoints?: Failpoints;
  /** The unprivileged account the agent runs as (decision 0030); undefined: droverd's own user. */
  account?: AgentAccount | undefined;
}

/** What agent.json holds: the intent (instance, version, port) before the spawn, the pid and start time after. */
export interface AgentRuntimeRecord {
  schema: 'drover.agent-runtime/v1';
  instance: string;
  version: string;
  port: number;
  /** Absent in an intent: droverd stopped between writing it and recording the spawned process. */
  pid?: number;
  startTime?: string | undefined;
  intentAt: string;
  startedAt?: string;
}

function parseRecord(value: unknown): Partial<AgentRuntimeRecord> {
  if (typeof value !== 'object' || value === null) return {};
  const { instance, version } = value as { instance?: unknown; version?: unknown };
  return { ...(typeof instance === 'string' ? { instance } : {}), ...(typeof version === 'string' ? { version } : {}) };
}

/** A free TCP port on `host`, for an agent configured with port 0. */
export async function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => {
        resolve(port);
      });
    });
  });
}

function hostForUrl(host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}

/** SIGTERM/SIGKILL to the agent's process group (it leads one: spawned detached), else to the agent alone. */
function signalGroup(child: ChildProcess, pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    child.kill(sig);
  }
}

/** Runs the current agent release as a child process, restarts it with backoff when it dies, and stops it for updates. */
export class Supervisor {
  readonly #options: SupervisorOptions;
  readonly #logger: Logger;
  #child: ChildProcess | undefined;
  #running: RunningAgent | undefined;
  #autoRestart = false;
  #crashes = 0;
  #restartTimer: NodeJS.Timeout | undefined;
  #stopping = false;
  #closed = false;
  #starting: Promise<RunningAgent> | undefined;
  #tag: Promise<string> | undefined;
  readonly #failpoints: Failpoints;

  constructor(options: SupervisorOptions) {
    this.#options = options;
    this.#logger = options.logger.child({ component: 'drover:daemon:supervisor' });
    this.#failpoints = options.failpoints ?? noFailpoints;
  }

  get running(): RunningAgent | undefined {
    return this.#running;
  }

  /** Turns automatic restarts on (outside updates) or off (the update machine drives the agent). */
  setAutoRestart(on: boolean): void {
    this.#autoRestart = on;
    if (!on && this.#restartTimer !== undefined) {
      clearTimeout(this.#restartTimer);
      this.#restartTimer = undefined;
    }
  }

  /**
   * Stops every agent of this install that droverd does not supervise now (decision 0026): the
   * processes /proc shows with this install's DROVER_AGENT_INSTANCE mark and another instance than
   * the running agent's, and at droverd's start also the process agent.json names (pid and start
   * time must match: a reused pid is never signalled), for an agent whose environment cannot be
   * read. SIGTERM to each one's process group, SIGKILL after the stop timeout. Returns how many
   * were found. Called at start, before each agent start and after each stop.
   */
  async reapStrays(when: 'start' | 'before-start' | 'after-stop'): Promise<number> {
    const current = this.#running;
    const marked = (await this.#findMarked()).filter((p) => p.instance !== current?.instance);
    const strays: (ProcessIdentity & { pgid?: number; instance?: string })[] = [...marked];
    if (when === 'start' && current === undefined) {
      let record: unknown;
      try {
        record = await readJsonFile(this.#options.runtimePath, 4096);
      } catch {
        record = undefined;
      }
      const recorded = parseIdentity(record);
      const { instance, version } = parseRecord(record);
      if (instance !== undefined && recorded === undefined) {
        this.#logger.warn(
          { event: 'agent.unrecorded', instance, version, found: marked.some((p) => p.instance === instance) },
          'The previous droverd stopped between starting an agent and recording its pid; looking for it by its mark',
        );
      }
      if (recorded !== undefined && !marked.some((p) => p.pid === recorded.pid) && (await isAlive(recorded))) {
        strays.push({ ...recorded, pgid: (await processStat(recorded.pid))?.pgid });
      }
    }
    if (strays.length > 0) {
      this.#logger.warn(
        { event: 'agent.strays', when, pids: strays.map((p) => p.pid), instances: [...new Set(strays.map((p) => p.instance ?? 'unmarked'))] },
        'Agent processes droverd does not supervise are running; stopping them (SIGTERM to their process groups, SIGKILL after the stop timeout)',
      );
      const left = await stopProcesses(strays, { graceMs: this.#options.settings.stopTimeoutMs, protectPgid: current?.pid });
      if (left.length > 0) {
        this.#logger.error({ event: 'agent.strays_left', pids: left.map((p) => p.pid) }, 'Stray agent processes survived SIGKILL (or may not be signalled by droverd); stop them by hand');
      }
    }
    if (when === 'start' && current === undefined) await rm(this.#options.runtimePath, { force: true });
    return strays.length;
  }

  // droverd's own marked processes, and the agent user's (read as that user: decision 0030).
  async #findMarked(): Promise<MarkedProcess[]> {
    const tag = await this.#installTag();
    const own = await findMarked(tag);
    const account = this.#options.account;
    if (account === undefined || account.uid === process.getuid?.()) return own;
    const theirs = await findMarkedAs(tag, account, this.#options.nodePath ?? process.execPath).catch((error: unknown) => {
      this.#logger.error({ event: 'agent.strays_unreadable', err: error, user: account.name }, `Could not list the agent user's processes; strays of ${account.name} are not stopped this time`);
      return [];
    });
    return [...own, ...theirs].sort((a, b) => a.pid - b.pid);
  }

  #installTag(): Promise<string> {
    this.#tag ??= installTag(this.#options.stateDir);
    return this.#tag;
  }

  /** Starts the installed agent (current/agent). Throws AGENT_NOT_INSTALLED or AGENT_START_FAILED. */
  async start(): Promise<RunningAgent> {
    if (this.#running !== undefined) return this.#running;
    if (this.#restartTimer !== undefined) {
      clearTimeout(this.#restartTimer);
      this.#restartTimer = undefined;
    }
    // Two starts at once (a restart timer and the update machine) must not spawn two agents.
    this.#starting ??= this.#start().finally(() => {
      this.#starting = undefined;
    });
    return this.#starting;
  }

  async #start(): Promise<RunningAgent> {
    const release = await this.#options.store.current('agent');
    if (release === undefined) throw new DaemonError('AGENT_NOT_INSTALLED', 'No agent release is installed (current/agent). Install one (droverd install) or wait for an update command.');
    await this.reapStrays('before-start');
    return this.#spawn(release);
  }

  async #spawn(release: InstalledRelease): Promise<RunningAgent> {
    const settings = this.#options.settings;
    const failpoints = this.#failpoints;
    const account = this.#options.account;
    // Before the intent: an agent user that cannot reach its release would fail at every start.
    if (account !== undefined) {
      await checkAgentCanReach(release.dir, account);
      await checkAgentCanExecute(release.node ? (this.#options.nodePath ?? process.execPath) : release.entry, account);
    }
    const port = settings.port === 0 ? await freePort(settings.host) : settings.port;
    const instance = newInstance(await this.#installTag());
    const intentAt = new Date().toISOString();
    const intent: AgentRuntimeRecord = { schema: 'drover.agent-runtime/v1', instance, version: release.version, port, intentAt };
    // The intent is durable before the process exists: whatever happens next, agent.json names the instance to look for.
    failpoints.hit('agent:before-intent', release.version);
    await this.#record(intent);
    failpoints.hit('agent:intent-written', release.version);
    const env: NodeJS.ProcessEnv = {
      PATH: process.env['PATH'] ?? '/usr/local/bin:/usr/bin:/bin',
      ...(process.env['LANG'] === undefined ? {} : { LANG: process.env['LANG'] }),
      ...(process.env['TZ'] === undefined ? {} : { TZ: process.env['TZ'] }),
      ...(account === undefined ? {} : { HOME: account.dataDir, USER: account.name, LOGNAME: account.name }),
      ...settings.env,
      ...(account === undefined ? {} : { DROVER_AGENT_DATA_DIR: account.dataDir }),
      DROVER_SERVICE_TOKEN: this.#options.serviceToken,
      DROVER_CONFIG_DIR: settings.configDir,
      DROVER_AGENT_VERSION: release.version,
      AGENT_HOST: settings.host,
      AGENT_PORT: String(port),
      PORT: String(port),
      // Last, so agent.env cannot override it: the mark that finds this process and its children in /proc.
      [INSTANCE_ENV]: instance,
    };
    const [command, args] = release.node ? [this.#options.nodePath ?? process.execPath, [release.entry]] : [release.entry, []];
    // detached: the agent leads a new session and process group, so a stop reaches its children too.
    // As the agent user: the kernel, not droverd, keeps it out of droverd's state (decision 0030).
    const ids = account === undefined ? {} : { uid: account.uid, gid: account.gid };
    const child = spawn(command, args, { cwd: release.dir, env, stdio: ['ignore', 'inherit', 'inherit'], detached: true, ...ids });
    failpoints.hit('agent:spawned', release.version);
    const exited = new Promise<AgentExit>((resolve) => {
      let settled = false;
      const settle = (exit: AgentExit): void => {
        if (settled) return;
        settled = true;
        resolve(exit);
      };
      child.once('exit', (code, signal) => {
        settle({ code, signal });
      });
      child.once('error', (error) => {
        this.#logger.error({ event: 'agent.spawn_failed', err: error, entry: release.entry }, 'The agent could not be started');
        settle({ code: null, signal: null });
      });
    });
    const pid = await new Promise<number | undefined>((resolve) => {
      child.once('spawn', () => {
        resolve(child.pid);
      });
      void exited.then(() => {
        resolve(undefined);
      });
    });
    if (pid === undefined) {
      await rm(this.#options.runtimePath, { force: true }).catch(() => undefined);
      throw new DaemonError('AGENT_START_FAILED', `The agent ${release.version} could not be started (${release.entry}). Check that the file is executable and its interpreter exists.`);
    }
    const running: RunningAgent = { pid, instance, version: release.version, port, baseUrl: `http://${hostForUrl(settings.host)}:${port}`, startedAt: Date.now(), exited };
    this.#child = child;
    this.#running = running;
    const identity = await currentIdentity(pid);
    failpoints.hit('agent:before-record', release.version);
    const record: AgentRuntimeRecord = { ...intent, pid, startTime: identity.startTime, startedAt: new Date(running.startedAt).toISOString() };
    await this.#record(record);
    failpoints.hit('agent:recorded', release.version);
    this.#logger.info({ event: 'agent.started', pid, version: release.version, port }, 'Agent started');
    void exited.then((exit) => {
      this.#onExit(running, exit);
    });
    return running;
  }

  /**
   * Writes agent.json (durable, atomic). A refused write (a full disk) does not keep the agent from
   * running: the mark in its environment is what finds it after a crash; the record is the fallback
   * for an agent whose environment cannot be read.
   */
  async #record(record: AgentRuntimeRecord): Promise<void> {
    try {
      await writeJsonAtomic(this.#options.runtimePath, record, { mode: 0o600 });
    } catch (error) {
      this.#logger.error({ event: 'agent.record_failed', err: error, instance: record.instance, stage: record.pid === undefined ? 'intent' : 'pid' }, 'agent.json could not be written; the agent is still tracked by its mark');
    }
  }

  #onExit(agent: RunningAgent, exit: AgentExit): void {
    if (this.#running !== agent) return;
    this.#running = undefined;
    this.#child = undefined;
    void rm(this.#options.runtimePath, { force: true }).catch(() => undefined);
    const uptime = Date.now() - agent.startedAt;
    const expected = this.#stopping;
    this.#logger[expected ? 'info' : 'warn']({ event: 'agent.exited', pid: agent.pid, version: agent.version, code: exit.code, signal: exit.signal, uptimeMs: uptime }, 'Agent exited');
    if (expected || !this.#autoRestart || this.#closed) return;
    if (uptime >= limits.restartStableAfterMs) this.#crashes = 0;
    const wait = Math.min(this.#options.settings.restartBackoffMaxMs, limits.restartBackoffBaseMs * 2 ** Math.min(this.#crashes, 20));
    this.#crashes += 1;
    this.#logger.warn({ event: 'agent.restart_scheduled', inMs: wait, crashes: this.#crashes }, 'Restarting the agent after a backoff');
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined;
      if (!this.#autoRestart || this.#closed || this.#running !== undefined) return;
      this.start().catch((error: unknown) => {
        this.#logger.error({ event: 'agent.restart_failed', err: error }, 'The agent could not be restarted');
        this.#onExit({ ...agent, startedAt: Date.now() }, { code: null, signal: null });
      });
    }, wait);
  }

  /** Waits up to `ms` for the running agent to exit on its own; true when it did (or none runs). */
  async waitForExit(ms: number, signal?: AbortSignal): Promise<boolean> {
    const agent = this.#running;
    if (agent === undefined) return true;
    const timeout = sleep(ms, signal).then(() => false);
    return Promise.race([agent.exited.then(() => true), timeout]);
  }

  /**
   * Stops the agent: SIGTERM (the agent drains and exits), SIGKILL after `timeoutMs`.
   * Resolves once it has exited. No automatic restart follows.
   */
  async stop(timeoutMs: number = this.#options.settings.stopTimeoutMs): Promise<void> {
    const agent = this.#running;
    const child = this.#child;
    if (agent === undefined || child === undefined) {
      await this.reapStrays('after-stop');
      return;
    }
    this.#stopping = true;
    try {
      signalGroup(child, agent.pid, 'SIGTERM');
      const done = await Promise.race([agent.exited.then(() => true), sleep(timeoutMs).then(() => false)]);
      if (!done) {
        this.#logger.warn({ event: 'agent.kill', pid: agent.pid, afterMs: timeoutMs }, 'The agent did not exit after SIGTERM; sending SIGKILL');
        signalGroup(child, agent.pid, 'SIGKILL');
        await agent.exited;
      }
    } finally {
      this.#stopping = false;
    }
    // What the agent left behind (a child that outlived it, or left its group) goes too.
    await this.reapStrays('after-stop');
  }

  /** Marks the next exit as expected (the agent was asked to shut down over HTTP). */
  expectExit(): void {
    this.#stopping = true;
    const agent = this.#running;
    void agent?.exited.finally(() => {
      this.#stopping = false;
    });
  }

  /** Stops supervising for good (droverd is exiting): no restart will be scheduled. */
  close(): void {
    this.#closed = true;
    this.setAutoRestart(false);
  }
}
