import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { limits } from '../config.js';
import { DaemonError } from '../errors.js';
import { readJsonFile, writeJsonAtomic } from '../host/fs-atomic.js';
import { currentIdentity, isAlive, parseIdentity } from '../host/process-identity.js';
import type { Logger } from '../logger.js';
import type { InstalledRelease, ReleaseStore } from '../releases/store.js';
import type { AgentSettings } from '../settings.js';
import { sleep } from '../timing.js';

// Runs the agent: `current/agent`'s entry point with the service token and DROVER_CONFIG_DIR, in
// an environment of its own (the daemon's environment, with its proxy settings and failpoints,
// is not passed on). Outside an update it restarts a dead agent with exponential backoff; during
// an update the update machine owns the agent's life and automatic restarts are off.

/** How the agent process ended: its exit code, or the signal that killed it. */
export interface AgentExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** The agent process droverd runs: its pid, version, port and base URL, and when it exits. */
export interface RunningAgent {
  pid: number;
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
  /** The Node.js that runs .js entry points (default: the one running droverd). */
  nodePath?: string;
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

  constructor(options: SupervisorOptions) {
    this.#options = options;
    this.#logger = options.logger.child({ component: 'drover:daemon:supervisor' });
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
   * Stops an agent left running by a droverd that was killed (outside systemd, nothing else would):
   * SIGTERM, then SIGKILL after the stop timeout. Its pid and start time are in agent.json, so a
   * reused pid is never signalled.
   */
  async stopOrphan(): Promise<void> {
    let recorded;
    try {
      recorded = parseIdentity(await readJsonFile(this.#options.runtimePath, 4096));
    } catch {
      recorded = undefined;
    }
    if (recorded !== undefined && (await isAlive(recorded))) {
      this.#logger.warn({ event: 'agent.orphan', pid: recorded.pid }, 'An agent from a previous droverd is still running; stopping it');
      try {
        process.kill(recorded.pid, 'SIGTERM');
      } catch {
        // gone meanwhile
      }
      const deadline = Date.now() + this.#options.settings.stopTimeoutMs;
      while (Date.now() < deadline && (await isAlive(recorded))) await sleep(50);
      if (await isAlive(recorded)) {
        try {
          process.kill(recorded.pid, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
        while (await isAlive(recorded)) await sleep(20);
      }
    }
    await rm(this.#options.runtimePath, { force: true });
  }

  /** Starts the installed agent (current/agent). Throws AGENT_NOT_INSTALLED or AGENT_START_FAILED. */
  async start(): Promise<RunningAgent> {
    if (this.#running !== undefined) return this.#running;
    if (this.#restartTimer !== undefined) {
      clearTimeout(this.#restartTimer);
      this.#restartTimer = undefined;
    }
    const release = await this.#options.store.current('agent');
    if (release === undefined) throw new DaemonError('AGENT_NOT_INSTALLED', 'No agent release is installed (current/agent). Install one (droverd install) or wait for an update command.');
    return this.#spawn(release);
  }

  async #spawn(release: InstalledRelease): Promise<RunningAgent> {
    const settings = this.#options.settings;
    const port = settings.port === 0 ? await freePort(settings.host) : settings.port;
    const env: NodeJS.ProcessEnv = {
      PATH: process.env['PATH'] ?? '/usr/local/bin:/usr/bin:/bin',
      ...(process.env['LANG'] === undefined ? {} : { LANG: process.env['LANG'] }),
      ...(process.env['TZ'] === undefined ? {} : { TZ: process.env['TZ'] }),
      ...settings.env,
      DROVER_SERVICE_TOKEN: this.#options.serviceToken,
      DROVER_CONFIG_DIR: settings.configDir,
      DROVER_AGENT_VERSION: release.version,
      AGENT_HOST: settings.host,
      AGENT_PORT: String(port),
      PORT: String(port),
    };
    const [command, args] = release.node ? [this.#options.nodePath ?? process.execPath, [release.entry]] : [release.entry, []];
    const child = spawn(command, args, { cwd: release.dir, env, stdio: ['ignore', 'inherit', 'inherit'], detached: true });
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
      throw new DaemonError('AGENT_START_FAILED', `The agent ${release.version} could not be started (${release.entry}). Check that the file is executable and its interpreter exists.`);
    }
    const running: RunningAgent = { pid, version: release.version, port, baseUrl: `http://${hostForUrl(settings.host)}:${port}`, startedAt: Date.now(), exited };
    this.#child = child;
    this.#running = running;
    const identity = await currentIdentity(pid);
    await writeJsonAtomic(this.#options.runtimePath, { ...identity, port, version: release.version, startedAt: new Date(running.startedAt).toISOString() }, { mode: 0o600 });
    this.#logger.info({ event: 'agent.started', pid, version: release.version, port }, 'Agent started');
    void exited.then((exit) => {
      this.#onExit(running, exit);
    });
    return running;
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
    if (agent === undefined || child === undefined) return;
    this.#stopping = true;
    try {
      child.kill('SIGTERM');
      const done = await Promise.race([agent.exited.then(() => true), sleep(timeoutMs).then(() => false)]);
      if (!done) {
        this.#logger.warn({ event: 'agent.kill', pid: agent.pid, afterMs: timeoutMs }, 'The agent did not exit after SIGTERM; sending SIGKILL');
        child.kill('SIGKILL');
        await agent.exited;
      }
    } finally {
      this.#stopping = false;
    }
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
