// Real droverd processes for the daemon's end-to-end suites: a temporary host (config, agent
// config, state, logs), `node daemon/dist/bin.js <command>`, and clean-up that leaves no process
// behind (the daemon, and any agent a SIGKILLed daemon orphaned, found by its mark in /proc).
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TrustPolicyDocument } from '@drover/protocol';
import type { FakeManager } from '../fakes/fake-manager.js';
import { run } from './cli.js';
import type { RunResult } from './cli.js';

export const droverdBin = fileURLToPath(new URL('../../daemon/dist/bin.js', import.meta.url));

export function requireBuiltDaemon(): void {
  if (!existsSync(droverdBin)) throw new Error(`${droverdBin} is missing: run \`npm run build\` first (\`npm test\` does).`);
}

export interface Host {
  dir: string;
  configPath: string;
  stateDir: string;
  logsDir: string;
  agentConfigDir: string;
  agentConfigPath: string;
  env: NodeJS.ProcessEnv;
}

export interface HostOptions {
  /** Merged over the default droverd.json. */
  settings?: Record<string, unknown>;
  agentConfig?: string;
}

/** What a host needs from its manager: where it is, the key it pins, the trust policy of its releases. */
export interface ManagerPeer {
  url: string;
  /** The manager's nonce-signing public key (base64, hex or PEM). */
  managerKey: string;
  /** Put in droverd.json so `droverd run` enrolls by itself; leave out to enroll with `droverd enroll`. */
  enrollmentToken?: string;
  trustPolicy: TrustPolicyDocument;
}

/** A temporary host enrolled-by-config against `manager`, with trust.json for its release key. */
export function createHost(manager: FakeManager, options: HostOptions = {}): Promise<Host> {
  return createHostFor(
    { url: manager.url, managerKey: manager.managerKey.publicKey.toBase64(), enrollmentToken: manager.enrollmentToken, trustPolicy: manager.trustPolicy() },
    options,
  );
}

/** A temporary host for any manager (the test peer or a real `drover manager start`). */
export async function createHostFor(peer: ManagerPeer, options: HostOptions = {}): Promise<Host> {
  const dir = await mkdtemp(join(tmpdir(), 'droverd-host-'));
  const host: Host = {
    dir,
    configPath: join(dir, 'etc', 'droverd.json'),
    stateDir: join(dir, 'state'),
    logsDir: join(dir, 'logs'),
    agentConfigDir: join(dir, 'etc', 'agent'),
    agentConfigPath: join(dir, 'etc', 'agent', 'agent.json'),
    env: {},
  };
  await mkdir(host.agentConfigDir, { recursive: true });
  await mkdir(host.stateDir, { recursive: true, mode: 0o700 });
  await mkdir(host.logsDir, { recursive: true });
  const settings = {
    manager: { url: peer.url, key: peer.managerKey, ...(peer.enrollmentToken === undefined ? {} : { enrollmentToken: peer.enrollmentToken }) },
    agent: { configDir: host.agentConfigDir, port: 0, stopTimeoutSeconds: 5, restartBackoffMaxSeconds: 2 },
    update: { healthGraceSeconds: 0.5, healthTimeoutSeconds: 5, deferBackoffMaxSeconds: 1 },
    download: { stallTimeoutSeconds: 1, maxAttempts: 2 },
    ...options.settings,
  };
  await writeFile(host.configPath, `${JSON.stringify(settings, null, 2)}\n`);
  await writeFile(host.agentConfigPath, options.agentConfig ?? '{\n  "workIntervalMs": 0,\n  "workMs": 200\n}\n');
  await writeFile(join(host.stateDir, 'trust.json'), `${JSON.stringify(peer.trustPolicy, null, 2)}\n`);
  host.env = {
    PATH: process.env['PATH'],
    STATE_DIRECTORY: host.stateDir,
    LOGS_DIRECTORY: host.logsDir,
    DROVER_CONFIG: host.configPath,
  };
  return host;
}

/** Runs a one-shot droverd command (status, verify, install, enroll). */
export function droverd(host: Host, args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  requireBuiltDaemon();
  return run(process.execPath, [droverdBin, ...args], { env: { ...host.env, ...env }, timeoutMs: 30_000 });
}

/** Installs the first agent release with `droverd install` (signed by the manager's release key). */
export async function installAgent(host: Host, manager: FakeManager, version: string, bytes: Buffer): Promise<void> {
  const file = join(host.dir, `agent-${version}.cjs`);
  const release = join(host.dir, `agent-${version}.release.json`);
  await writeFile(file, bytes);
  await writeFile(release, JSON.stringify(manager.signRelease({ version, bytes, fileName: 'agent.cjs' })));
  const result = await droverd(host, ['install', '--release', release, file, '--json']);
  if (result.code !== 0) throw new Error(`droverd install failed (${String(result.code)}): ${result.stdout}${result.stderr}`);
  await rm(file);
}

export interface LogLine {
  event?: string;
  msg?: string;
  level?: string;
  step?: string;
  [key: string]: unknown;
}

/** A running `droverd run`, its JSON log lines collected. */
export class DaemonProcess {
  readonly child: ChildProcess;
  readonly lines: LogLine[] = [];
  readonly output: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly #waiters = new Set<() => void>();

  /** `wrapper`: a command prefix droverd runs under (e.g. the unit's system-call filter, test/helpers/unit-filter.ts). */
  constructor(host: Host, env: NodeJS.ProcessEnv = {}, args: readonly string[] = [droverdBin, 'run'], wrapper: readonly string[] = []) {
    requireBuiltDaemon();
    const [program = process.execPath, ...prefix] = wrapper;
    const argv = wrapper.length === 0 ? args : [...prefix, process.execPath, ...args];
    this.child = spawn(program, argv, { env: { ...host.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let buffered = '';
    const onData = (chunk: Buffer): void => {
      buffered += chunk.toString('utf8');
      let newline = buffered.indexOf('\n');
      while (newline !== -1) {
        const text = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        this.output.push(text);
        try {
          this.lines.push(JSON.parse(text) as LogLine);
        } catch {
          // not JSON: kept in output only
        }
        newline = buffered.indexOf('\n');
      }
      for (const wake of [...this.#waiters]) wake();
    };
    this.child.stdout?.on('data', onData);
    this.child.stderr?.on('data', onData);
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        resolve({ code, signal });
        for (const wake of [...this.#waiters]) wake();
      });
    });
  }

  /** The first log line matching `predicate`, looked for again on each chunk droverd writes. */
  async waitForLine(predicate: (line: LogLine) => boolean, timeoutMs = 20_000): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.lines.find(predicate);
      if (found !== undefined) return found;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`Timed out waiting for a droverd log line; last lines:\n${this.output.slice(-30).join('\n')}`);
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          this.#waiters.delete(done);
          resolve();
        };
        const timer = setTimeout(done, left);
        this.#waiters.add(done);
      });
    }
  }

  /** SIGTERM, and wait for the exit (SIGKILL after `timeoutMs`). */
  async stop(timeoutMs = 15_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    const exit = await this.exited;
    clearTimeout(timer);
    return exit;
  }
}

function readPid(path: string): number | undefined {
  try {
    const value = JSON.parse(readFileSync(path, 'utf8')) as { pid?: unknown };
    return typeof value.pid === 'number' ? value.pid : undefined;
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Kills whatever a host left running (a daemon, an orphaned agent), then removes the host. */
export async function destroyHost(host: Host, daemons: readonly DaemonProcess[] = []): Promise<void> {
  await killHost(host, daemons);
  await rm(host.dir, { recursive: true, force: true });
}

/** Kills whatever a host left running (a daemon, an orphaned agent), keeping its files. */
export async function killHost(host: Host, daemons: readonly DaemonProcess[] = []): Promise<void> {
  for (const daemon of daemons) if (daemon.child.exitCode === null && daemon.child.signalCode === null) daemon.child.kill('SIGKILL');
  await Promise.all(daemons.map((d) => d.exited));
  const pids = new Set((await hostAgents(host)).map((a) => a.pid));
  for (const file of ['agent.json', 'droverd.pid']) {
    const pid = readPid(join(host.stateDir, file));
    if (pid !== undefined && pid !== process.pid) pids.add(pid);
  }
  for (const pid of pids) {
    if (!alive(pid)) continue;
    process.kill(pid, 'SIGKILL');
    const deadline = Date.now() + 5_000;
    while (alive(pid) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** An agent process of a host, found in /proc by the mark droverd gives it (DROVER_AGENT_INSTANCE). */
export interface HostAgent {
  pid: number;
  instance: string;
  /** DROVER_AGENT_VERSION from its environment. */
  version: string | undefined;
}

/**
 * Every live process carrying droverd's agent mark whose DROVER_CONFIG_DIR is this host's: how the
 * crash table counts agents, independently of agent.json (which a killed droverd may not have written).
 */
export async function hostAgents(host: Host): Promise<HostAgent[]> {
  const found: HostAgent[] = [];
  const names = await readdir('/proc').catch(() => [] as string[]);
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    let environ: string;
    let stat: string;
    try {
      environ = await readFile(`/proc/${name}/environ`, 'latin1');
      stat = await readFile(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue;
    }
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue;
    const vars = new Map(environ.split('\0').map((entry) => [entry.slice(0, Math.max(0, entry.indexOf('='))), entry.slice(entry.indexOf('=') + 1)] as const));
    const instance = vars.get('DROVER_AGENT_INSTANCE');
    if (instance === undefined || vars.get('DROVER_CONFIG_DIR') !== host.agentConfigDir) continue;
    found.push({ pid: Number(name), instance, version: vars.get('DROVER_AGENT_VERSION') });
  }
  return found;
}

/** The running agent, as droverd recorded it (agent.json). */
export async function agentRuntime(host: Host): Promise<{ pid: number; port: number; version: string } | undefined> {
  try {
    return JSON.parse(await readFile(join(host.stateDir, 'agent.json'), 'utf8')) as { pid: number; port: number; version: string };
  } catch {
    return undefined;
  }
}

/** GET a route of the agent droverd runs (health, info). */
export async function agentGet(host: Host, path: string): Promise<unknown> {
  const runtime = await agentRuntime(host);
  if (runtime === undefined) return undefined;
  const { request } = await import('undici');
  try {
    const response = await request(`http://127.0.0.1:${runtime.port}${path}`, { headersTimeout: 2_000, bodyTimeout: 2_000 });
    return await response.body.json();
  } catch {
    return undefined;
  }
}

/** Waits until the agent answers healthy at `version`. */
export async function waitForAgent(host: Host, version: string, timeoutMs = 20_000): Promise<{ status: string; version: string }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const health = (await agentGet(host, '/v1/system/health')) as { status: string; version: string } | undefined;
    if (health?.status === 'healthy' && health.version === version) return health;
    if (Date.now() > deadline) throw new Error(`The agent is not healthy at ${version} after ${timeoutMs} ms (last: ${JSON.stringify(health)})`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** What is under releases/<artifact>/, recursively (to prove nothing half-installed is left). */
export async function releaseTree(host: Host, artifact = 'agent'): Promise<string[]> {
  const { readdir } = await import('node:fs/promises');
  try {
    const entries = await readdir(join(host.stateDir, 'releases', artifact), { recursive: true });
    return entries.map(String).sort();
  } catch {
    return [];
  }
}
