import { spawn } from 'node:child_process';
import type { Logger } from '../logger.js';

// systemd's service notifications (sd_notify(3)) for `Type=notify` and `WatchdogSec=`: READY=1 once
// droverd supervises the agent, WATCHDOG=1 from droverd's event loop at half of WATCHDOG_USEC (a
// hung loop stops the pings and systemd restarts droverd), until droverd has stopped.
//
// Node has no AF_UNIX datagram sockets, so each message is sent by the systemd-notify tool, which
// waits (BARRIER=1) until systemd has taken the message, so it is attributed to the unit although
// the tool exits right after. systemd sees the tool's own PID, not droverd's: the unit needs
// NotifyAccess=all (decision 0029). Without $NOTIFY_SOCKET (not under systemd, tests) every call is
// a no-op, and a failure to notify is logged, never thrown: it must not stop droverd.

/** How long one systemd-notify may take before it is killed (it waits for systemd's barrier). */
const NOTIFY_TIMEOUT_MS = 10_000;

export interface ServiceNotifierOptions {
  env?: Readonly<Record<string, string | undefined>>;
  logger: Logger;
  /** The systemd-notify program (default: found on PATH). */
  command?: string;
  pid?: number;
}

export class ServiceNotifier {
  readonly #socket: string | undefined;
  readonly #watchdogMs: number | undefined;
  readonly #logger: Logger;
  readonly #command: string;
  readonly #path: string | undefined;
  #timer: NodeJS.Timeout | undefined;
  #warned = false;
  #ready = false;
  #pinging = false;

  constructor(options: ServiceNotifierOptions) {
    const env = options.env ?? process.env;
    this.#logger = options.logger.child({ component: 'drover:notify' });
    this.#command = options.command ?? 'systemd-notify';
    this.#path = env['PATH'];
    const socket = env['NOTIFY_SOCKET'];
    this.#socket = socket === undefined || socket === '' ? undefined : socket;
    // sd_watchdog_enabled(3): WATCHDOG_USEC, for this process only when WATCHDOG_PID names it.
    const usec = Number(env['WATCHDOG_USEC']);
    const watchdogPid = env['WATCHDOG_PID'];
    const forUs = watchdogPid === undefined || watchdogPid === '' || Number(watchdogPid) === (options.pid ?? process.pid);
    this.#watchdogMs = this.#socket !== undefined && forUs && Number.isFinite(usec) && usec > 0 ? usec / 1000 : undefined;
  }

  /** True when systemd asked for notifications ($NOTIFY_SOCKET is set). */
  get enabled(): boolean {
    return this.#socket !== undefined;
  }

  /** The watchdog interval systemd set (WATCHDOG_USEC, in ms), or undefined. */
  get watchdogMs(): number | undefined {
    return this.#watchdogMs;
  }

  /** READY=1, once. */
  ready(status: string): void {
    if (this.#ready) return;
    this.#ready = true;
    this.#send(['READY=1', `STATUS=${status}`]);
  }

  /** Ends the watchdog pings (no message). */
  close(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /**
   * Starts the WATCHDOG=1 pings when systemd asked for them (WATCHDOG_USEC), from droverd's start:
   * systemd's watchdog runs from the start of the process, before READY=1 (enrollment may be slower
   * than WatchdogSec=). Pinged from the event loop itself, so a loop that hangs stops the pings;
   * at half the interval, as sd_watchdog_enabled(3) recommends, leaving time for a slow systemd-notify.
   */
  startWatchdog(): void {
    if (this.#watchdogMs === undefined || this.#timer !== undefined) return;
    this.#timer = setInterval(() => {
      if (this.#pinging) return; // the previous ping has not finished: do not pile them up
      this.#send(['WATCHDOG=1']);
    }, Math.max(1, Math.floor(this.#watchdogMs / 2)));
    this.#timer.unref();
  }

  #send(assignments: string[]): void {
    const socket = this.#socket;
    if (socket === undefined) return;
    const watchdog = assignments[0] === 'WATCHDOG=1';
    if (watchdog) this.#pinging = true;
    let settled = false;
    const done = (problem: string | undefined, error?: unknown): void => {
      if (settled) return;
      settled = true;
      if (watchdog) this.#pinging = false;
      if (problem === undefined) return;
      // Once at warn (a host without systemd-notify would otherwise log every ping), then at debug.
      const level = this.#warned ? 'debug' : 'warn';
      this.#warned = true;
      this.#logger[level]({ event: 'notify.failed', message: assignments[0], err: error }, `Could not notify systemd (${assignments[0] ?? ''}): ${problem}`);
    };
    try {
      const child = spawn(this.#command, assignments, {
        env: { NOTIFY_SOCKET: socket, ...(this.#path === undefined ? {} : { PATH: this.#path }) },
        stdio: ['ignore', 'ignore', 'pipe'],
        timeout: NOTIFY_TIMEOUT_MS,
      });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
        if (stderr.length < 1024) stderr += chunk;
      });
      child.on('error', (error) => {
        done(`${this.#command} could not run`, error);
      });
      child.on('close', (code, signal) => {
        if (code === 0) done(undefined);
        else done(`${this.#command} exited ${signal ?? String(code)}${stderr === '' ? '' : `: ${stderr.trim()}`}`);
      });
    } catch (error) {
      done(`${this.#command} could not run`, error);
    }
  }
}
