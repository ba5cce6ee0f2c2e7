import { mkdir, rm, stat } from 'node:fs/promises';
import lockfile from 'proper-lockfile';
import { limits } from '../config.js';
import { DaemonError } from '../errors.js';
import { readJsonFile, writeJsonAtomic } from './fs-atomic.js';
import { currentIdentity, isAlive, parseIdentity } from './process-identity.js';

// One daemon per state directory. proper-lockfile holds the lock (a directory it refreshes); a
// second droverd must exit with a clear error instead of racing the first over the journal and the
// symlinks. A lock left by a daemon that was killed (SIGKILL, power cut) is taken over at once
// when its recorded owner is provably dead, instead of waiting for proper-lockfile's staleness.

/** The lock on the state directory, held while droverd runs: one daemon per state directory. */
export interface StateLock {
  release(): Promise<void>;
}

/** The options of {@link acquireStateLock}. */
export interface LockOptions {
  lockPath: string;
  ownerPath: string;
  /** Called when the lock is lost while held (someone removed it): stop, do not go on unguarded. */
  onCompromised: (error: Error) => void;
}

async function tryLock(target: string, options: LockOptions): Promise<() => Promise<void>> {
  return lockfile.lock(target, {
    lockfilePath: options.lockPath,
    realpath: false,
    stale: limits.lockStaleMs,
    update: limits.lockUpdateMs,
    retries: 0,
    onCompromised: options.onCompromised,
  });
}

async function ownerAlive(ownerPath: string): Promise<{ alive: boolean; pid: number | undefined }> {
  let owner;
  try {
    owner = parseIdentity(await readJsonFile(ownerPath, 4096));
  } catch {
    owner = undefined;
  }
  if (owner === undefined) return { alive: true, pid: undefined }; // unknown owner: assume alive, let staleness decide
  return { alive: await isAlive(owner), pid: owner.pid };
}

/**
 * Takes the state directory's lock, or throws DaemonError STATE_LOCKED naming the running daemon.
 *
 * @example
 * ```ts
 * const lock = await acquireStateLock(paths.state, { lockPath: paths.lock, ownerPath: paths.lockOwner, onCompromised })
 * ```
 */
export async function acquireStateLock(stateDir: string, options: LockOptions): Promise<StateLock> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  let release: () => Promise<void>;
  try {
    release = await tryLock(stateDir, options);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ELOCKED') throw error;
    release = await takeOverIfDead(stateDir, options, error);
  }
  await writeJsonAtomic(options.ownerPath, await currentIdentity(), { mode: 0o600 });
  return {
    release: async () => {
      await rm(options.ownerPath, { force: true });
      await release();
    },
  };
}

async function takeOverIfDead(stateDir: string, options: LockOptions, cause: unknown): Promise<() => Promise<void>> {
  // A second, short-lived lock serialises takeovers: two daemons started at once after a crash
  // must not both decide the old lock is dead and both remove it.
  const takeover = `${options.lockPath}.takeover`;
  try {
    await mkdir(takeover);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    const age = Date.now() - (await stat(takeover).catch(() => ({ mtimeMs: Date.now() }))).mtimeMs;
    if (age < limits.lockStaleMs) throw locked(undefined, cause);
    await rm(takeover, { recursive: true, force: true });
    await mkdir(takeover);
  }
  try {
    // Re-read the owner under the takeover lock: a daemon that took over meanwhile is alive.
    const owner = await ownerAlive(options.ownerPath);
    if (owner.alive) throw locked(owner.pid, cause);
    await rm(options.lockPath, { recursive: true, force: true });
    try {
      return await tryLock(stateDir, options);
    } catch (error) {
      throw locked(undefined, error);
    }
  } finally {
    await rm(takeover, { recursive: true, force: true });
  }
}

function locked(pid: number | undefined, cause: unknown): DaemonError {
  const who = pid === undefined ? 'Another droverd' : `Another droverd (pid ${pid})`;
  return new DaemonError(
    'STATE_LOCKED',
    `${who} is running on this state directory. Stop it first (systemctl stop droverd), or give this one another state directory.`,
    { cause },
  );
}
