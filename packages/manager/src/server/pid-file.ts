import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '@drover/protocol/internal';

// DIR/manager.pid: which process runs the manager of a directory, written once it listens and
// removed when it stops. `drover manager migrate-store` refuses to move the state of a manager
// that is still running (its writes after the copy would be lost). A pid file a killed manager
// left is recognised as such: no process has the pid, or the one that has it is not a manager.

const PID_FILE = 'manager.pid';

/** Writes DIR/manager.pid for this process. */
export async function writePidFile(dir: string): Promise<void> {
  await writeFileAtomic(join(dir, PID_FILE), `${String(process.pid)}\n`, { mode: 0o600 });
}

/** Removes DIR/manager.pid if it is this process's. */
export async function removePidFile(dir: string): Promise<void> {
  if ((await runningManagerPid(dir)) === process.pid) await rm(join(dir, PID_FILE), { force: true });
}

/** The pid of the manager running from `dir`, or undefined when none does. */
export async function runningManagerPid(dir: string): Promise<number | undefined> {
  let pid: number;
  try {
    pid = Number((await readFile(join(dir, PID_FILE), 'utf8')).trim());
  } catch {
    return undefined;
  }
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return undefined;
  }
  // The pid may have been given to another program since: only a manager counts.
  const cmdline = await readFile(`/proc/${String(pid)}/cmdline`, 'utf8').catch(() => undefined);
  if (cmdline !== undefined && !cmdline.includes('manager')) return undefined;
  return pid;
}
