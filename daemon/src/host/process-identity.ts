import { readFile } from 'node:fs/promises';

// A pid alone is not an identity: after a crash the kernel may give the same pid to an unrelated
// process. A pid together with its start time (field 22 of /proc/<pid>/stat, in clock ticks since
// boot) is, so droverd never signals or trusts a process that merely reuses a recorded pid.

export interface ProcessIdentity {
  pid: number;
  /** /proc/<pid>/stat start time; undefined where /proc is unavailable. */
  startTime: string | undefined;
}

/** What droverd reads of /proc/<pid>/stat: the state letter, the process group, the start time. */
export interface ProcessStat {
  /** R, S, D, Z, T, ... (field 3). */
  state: string;
  /** The process group id (field 5). */
  pgid: number;
  /** Clock ticks since boot (field 22). */
  startTime: string;
}

/** /proc/<pid>/stat's state, process group and start time; undefined when the process does not exist (or /proc is missing). */
export async function processStat(pid: number): Promise<ProcessStat | undefined> {
  let stat: string;
  try {
    stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) may contain spaces and parentheses: count fields after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const [state, , pgid] = fields;
  const startTime = fields[19];
  if (state === undefined || pgid === undefined || startTime === undefined) return undefined;
  return { state, pgid: Number(pgid), startTime };
}

/** The start time of `pid`, or undefined when the process does not exist (or /proc is missing). */
export async function processStartTime(pid: number): Promise<string | undefined> {
  return (await processStat(pid))?.startTime;
}

export async function currentIdentity(pid = process.pid): Promise<ProcessIdentity> {
  return { pid, startTime: await processStartTime(pid) };
}

/** True when a process with this identity is still alive (not a zombie of ours waiting to be reaped). */
export async function isAlive(identity: ProcessIdentity): Promise<boolean> {
  if (!Number.isInteger(identity.pid) || identity.pid <= 1) return false;
  try {
    process.kill(identity.pid, 0);
  } catch (error) {
    // EPERM: it exists but we may not signal it; count it as alive (the cautious answer).
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  const stat = await processStat(identity.pid);
  // Its stat unreadable: either it was reaped between kill(0) and the read (gone), or there is no
  // /proc at all (then kill(0) is all there is to trust). Our own stat tells which.
  if (stat === undefined) return (await processStat(process.pid)) === undefined;
  if (identity.startTime !== undefined && stat.startTime !== identity.startTime) return false;
  return stat.state !== 'Z';
}

/** Parses a recorded identity; undefined when malformed. */
export function parseIdentity(value: unknown): ProcessIdentity | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { pid, startTime } = value as { pid?: unknown; startTime?: unknown };
  if (typeof pid !== 'number' || !Number.isInteger(pid) || pid <= 1) return undefined;
  return { pid, startTime: typeof startTime === 'string' ? startTime : undefined };
}
