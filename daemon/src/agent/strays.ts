import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, readdir, realpath, stat as fileStat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { isAlive, processStat } from '../host/process-identity.js';
import type { ProcessIdentity } from '../host/process-identity.js';
import { sleep } from '../timing.js';

// Finding and stopping agents droverd did not (or no longer) supervise (decision 0026). Every agent
// droverd spawns carries DROVER_AGENT_INSTANCE=<install>-<instance> in its environment and leads a
// process group of its own. <install> is a hash of the state directory, so two droverd installs on
// one host never take each other's agents for strays; <instance> is new at each spawn. A process
// whose /proc/<pid>/environ carries this install's mark and is not the agent droverd supervises now
// is a stray: an agent a killed droverd left running (killed even before agent.json named it), or
// what a stopped agent left behind. Its group gets SIGTERM, then SIGKILL after a grace period.

/** The environment variable that marks an agent droverd spawned: `<install tag>-<instance id>`. */
export const INSTANCE_ENV = 'DROVER_AGENT_INSTANCE';

const SCAN_READERS = 8;

/** The install's part of the mark: 16 hex characters of the SHA-256 of the state directory's real path. */
export async function installTag(stateDir: string): Promise<string> {
  const path = await realpath(stateDir).catch(() => resolve(stateDir));
  return createHash('sha256').update(`drover.agent-instance/v1\0${path}`).digest('hex').slice(0, 16);
}

/** A new mark for one spawn: `<install tag>-<16 random hex characters>`. */
export function newInstance(tag: string): string {
  return `${tag}-${randomBytes(8).toString('hex')}`;
}

/** A process carrying this install's mark, as /proc showed it. */
export interface MarkedProcess extends ProcessIdentity {
  startTime: string;
  pgid: number;
  /** The whole mark (`<install tag>-<instance id>`). */
  instance: string;
}

/** The value of `name` in an environ block (NUL-separated NAME=value entries), or undefined. */
export function environValue(environ: Buffer, name: string): string | undefined {
  const prefix = `${name}=`;
  for (const entry of environ.toString('utf8').split('\0')) {
    if (entry.startsWith(prefix)) return entry.slice(prefix.length);
  }
  return undefined;
}

/**
 * A process found carrying `instance`, as a stray to stop: owned by `uid` (when given; /proc/<pid>
 * belongs to the process's effective user), alive and not a zombie. Undefined otherwise.
 */
async function confirmMarked(pid: number, instance: string, uid: number | undefined, procRoot: string): Promise<MarkedProcess | undefined> {
  const owner = await fileStat(`${procRoot}/${pid}`).then((s) => s.uid, () => undefined);
  if (owner === undefined || (uid !== undefined && owner !== uid)) return undefined;
  const stat = await processStat(pid);
  if (stat === undefined || stat.state === 'Z') return undefined;
  return { pid, startTime: stat.startTime, pgid: stat.pgid, instance };
}

/**
 * Every live process whose environment carries a mark of `tag`'s install and that runs as droverd's
 * own user (agents do; the mark is no secret, and another user's process that copies it must not
 * get droverd, as root, to signal it or its group). A process whose environ cannot be read (another
 * user's without CAP_SYS_PTRACE, or one that made itself non-dumpable) is not seen; nor is any
 * process where /proc is missing. droverd itself and zombies are left out.
 */
export async function findMarked(tag: string, procRoot = '/proc', uid: number | undefined = process.getuid?.()): Promise<MarkedProcess[]> {
  let names: string[];
  try {
    names = await readdir(procRoot);
  } catch {
    return [];
  }
  const needle = Buffer.from(`${INSTANCE_ENV}=${tag}-`);
  const pids = names.filter((name) => /^[1-9][0-9]*$/.test(name)).map(Number).filter((pid) => pid !== process.pid);
  const found: MarkedProcess[] = [];
  const inspect = async (pid: number): Promise<void> => {
    let environ: Buffer;
    try {
      environ = await readFile(`${procRoot}/${pid}/environ`);
    } catch {
      return; // gone, or not ours to read
    }
    if (!environ.includes(needle)) return;
    const instance = environValue(environ, INSTANCE_ENV);
    if (instance?.startsWith(`${tag}-`) !== true) return;
    const marked = await confirmMarked(pid, instance, uid, procRoot);
    if (marked !== undefined) found.push(marked);
  };
  // A few readers at a time: a host with thousands of processes must not cost thousands of open files.
  let next = 0;
  const reader = async (): Promise<void> => {
    while (next < pids.length) {
      const pid = pids[next];
      next += 1;
      if (pid !== undefined) await inspect(pid);
    }
  };
  await Promise.all(Array.from({ length: SCAN_READERS }, reader));
  return found.sort((a, b) => a.pid - b.pid);
}

// Run as the agent's user: lists that user's processes whose environment carries the mark, as
// JSON lines {pid, instance}. droverd, as root under its unit, has no CAP_SYS_PTRACE and so cannot
// read another user's /proc/<pid>/environ; the user itself can. Self-contained: droverd ships as
// one bundle, so the reader cannot import this module.
const READER = `
const { readdirSync, readFileSync, statSync } = require('node:fs');
const needle = Buffer.from(process.argv[1] + '=' + process.argv[2] + '-');
const uid = process.getuid();
const out = [];
for (const name of readdirSync('/proc')) {
  if (!/^[1-9][0-9]*$/.test(name) || Number(name) === process.pid) continue;
  try {
    if (statSync('/proc/' + name).uid !== uid) continue;
    const environ = readFileSync('/proc/' + name + '/environ');
    if (!environ.includes(needle)) continue;
    const entry = environ.toString('utf8').split('\\0').find((e) => e.startsWith(process.argv[1] + '='));
    if (entry !== undefined) out.push({ pid: Number(name), instance: entry.slice(process.argv[1].length + 1) });
  } catch {}
}
process.stdout.write(JSON.stringify(out));
`;

/**
 * {@link findMarked} for processes of another user (the agent's, decision 0030): the scan runs as
 * that user, in a short-lived node process, and what it reports is checked again here (owner,
 * mark, start time) before anything is signalled. A reader that fails finds nothing (logged by the caller).
 */
export async function findMarkedAs(tag: string, account: { uid: number; gid: number }, nodePath = process.execPath, procRoot = '/proc'): Promise<MarkedProcess[]> {
  const stdout = await new Promise<string>((done, fail) => {
    execFile(
      nodePath,
      ['-e', READER, INSTANCE_ENV, tag],
      { uid: account.uid, gid: account.gid, env: { PATH: '/usr/bin:/bin' }, cwd: '/', timeout: 10_000, maxBuffer: 4 * 1024 * 1024 },
      (error, out) => {
        if (error === null) done(out);
        else fail(new Error(`the process reader as uid ${account.uid} failed: ${error.message}`, { cause: error }));
      },
    );
  });
  const listed = JSON.parse(stdout) as unknown;
  if (!Array.isArray(listed)) return [];
  const found: MarkedProcess[] = [];
  for (const item of listed as { pid?: unknown; instance?: unknown }[]) {
    const { pid, instance } = item;
    if (typeof pid !== 'number' || !Number.isSafeInteger(pid) || pid <= 1 || typeof instance !== 'string' || !instance.startsWith(`${tag}-`)) continue;
    const marked = await confirmMarked(pid, instance, account.uid, procRoot);
    if (marked !== undefined) found.push(marked);
  }
  return found.sort((a, b) => a.pid - b.pid);
}

function signal(target: number, sig: NodeJS.Signals): void {
  try {
    process.kill(target, sig);
  } catch {
    // gone meanwhile, or not ours to signal (EPERM): what is left is reported by the caller
  }
}

/** What {@link stopProcesses} signals and how long it waits. */
export interface StopOptions {
  /** SIGKILL follows SIGTERM after this long. */
  graceMs: number;
  /** How long to wait for SIGKILLed processes to be gone before giving up on them. */
  killWaitMs?: number;
  /** A process group never signalled as a whole (the supervised agent's); its strays get signals one by one. */
  protectPgid?: number | undefined;
}

/**
 * SIGTERM to each process's group (and to the process, should it have left the group), SIGKILL to
 * whatever is alive after `graceMs`. A pid is signalled only while its start time still matches, so a
 * reused pid is never hit. Returns the processes still alive at the end (unkillable, or not ours).
 */
export async function stopProcesses(processes: readonly (ProcessIdentity & { pgid?: number })[], options: StopOptions): Promise<ProcessIdentity[]> {
  const ownPgid = (await processStat(process.pid))?.pgid;
  const send = async (sig: NodeJS.Signals): Promise<void> => {
    const groups = new Set<number>();
    for (const p of processes) {
      if (!(await isAlive(p))) continue;
      const pgid = p.pgid;
      if (pgid !== undefined && pgid > 1 && pgid !== ownPgid && pgid !== options.protectPgid && !groups.has(pgid)) {
        groups.add(pgid);
        signal(-pgid, sig);
      }
      signal(p.pid, sig);
    }
  };
  const alive = async (): Promise<ProcessIdentity[]> => (await Promise.all(processes.map(async (p) => ((await isAlive(p)) ? p : undefined)))).filter((p) => p !== undefined);
  const waitGone = async (ms: number): Promise<ProcessIdentity[]> => {
    const deadline = Date.now() + ms;
    let left = await alive();
    while (left.length > 0 && Date.now() < deadline) {
      await sleep(25);
      left = await alive();
    }
    return left;
  };
  await send('SIGTERM');
  if ((await waitGone(options.graceMs)).length === 0) return [];
  await send('SIGKILL');
  return waitGone(options.killWaitMs ?? 5_000);
}
