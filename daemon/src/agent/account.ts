import { execFile } from 'node:child_process';
import { chmod, chown, lstat, mkdir, readFile, realpath, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { DaemonError } from '../errors.js';
import type { Logger } from '../logger.js';

// The account the agent runs as (decision 0030). droverd, as root, runs the agent as a dedicated
// unprivileged user so a compromised agent cannot rewrite droverd's trust policy, journal or
// releases, read its credentials, or signal it: the kernel refuses, not droverd. This module
// resolves the configured user and group, checks that the agent can reach its release (search
// permission on every directory above it) before the first spawn, and prepares the agent's own
// writable directory.

/** Who the agent runs as: numeric ids for spawn(), the name for its environment and messages. */
export interface AgentAccount {
  uid: number;
  gid: number;
  name: string;
  /** The agent's own writable directory (owned by uid:gid, 0700): HOME and DROVER_AGENT_DATA_DIR. */
  dataDir: string;
}

interface Entry {
  name: string;
  id: number;
  gid?: number;
}

const NUMERIC = /^[0-9]{1,10}$/;

async function getent(database: 'passwd' | 'group', key: string): Promise<string | undefined> {
  return new Promise((done) => {
    execFile('getent', [database, key], { timeout: 5000 }, (error, stdout) => {
      done(error === null ? stdout.split('\n')[0] : undefined);
    });
  });
}

// getent(1) asks NSS (LDAP, sssd, ...); where it is missing, /etc/passwd and /etc/group are read.
async function lookup(database: 'passwd' | 'group', key: string): Promise<Entry | undefined> {
  let line = await getent(database, key);
  if (line === undefined) {
    const text = await readFile(`/etc/${database}`, 'utf8').catch(() => '');
    line = text.split('\n').find((l) => {
      const [name, , id] = l.split(':');
      return NUMERIC.test(key) ? id === key : name === key;
    });
  }
  if (line === undefined || line === '') return undefined;
  const fields = line.split(':');
  const id = Number(fields[2]);
  if (fields[0] === undefined || !Number.isInteger(id)) return undefined;
  return database === 'passwd' ? { name: fields[0], id, gid: Number(fields[3]) } : { name: fields[0], id };
}

/**
 * Resolves `agent.user` / `agent.group` from droverd.json. A numeric id without an entry is taken
 * as is (a container's users need not be in /etc/passwd). Refuses root, and a switch droverd
 * cannot make (it is not root).
 */
export async function resolveAgentAccount(user: string, group: string | undefined, dataDir: string): Promise<AgentAccount> {
  const entry = await lookup('passwd', user);
  if (entry === undefined && !NUMERIC.test(user)) {
    throw new DaemonError('AGENT_USER_UNKNOWN', `agent.user "${user}" does not exist on this host. Create it (useradd --system --no-create-home --shell /usr/sbin/nologin ${user}; install.sh creates drover) or fix /agent/user in droverd.json.`);
  }
  const uid = entry?.id ?? Number(user);
  let gid = entry?.gid;
  if (group !== undefined) {
    const groupEntry = await lookup('group', group);
    if (groupEntry === undefined && !NUMERIC.test(group)) {
      throw new DaemonError('AGENT_USER_UNKNOWN', `agent.group "${group}" does not exist on this host. Create it or fix /agent/group in droverd.json.`);
    }
    gid = groupEntry?.id ?? Number(group);
  }
  if (gid === undefined || !Number.isInteger(gid)) {
    throw new DaemonError('AGENT_USER_UNKNOWN', `agent.user "${user}" has no passwd entry, so it has no primary group. Set /agent/group in droverd.json too.`);
  }
  if (uid === 0 || gid === 0) {
    throw new DaemonError('AGENT_USER_INVALID', `agent.user must not be root (uid 0) or in group root: the agent would hold droverd's own rights. Name a dedicated unprivileged user (install.sh creates drover), or remove /agent/user to run it as droverd's user.`);
  }
  const own = process.getuid?.();
  if (own !== 0 && own !== uid) {
    throw new DaemonError('AGENT_USER_INVALID', `droverd runs as uid ${String(own)} and cannot start the agent as ${user} (uid ${uid}): only root may switch users. Run droverd as root (its systemd unit does), or remove /agent/user.`);
  }
  return { uid, gid, name: entry?.name ?? user, dataDir };
}

function canSearch(mode: number, owner: number, group: number, account: AgentAccount, bit: number): boolean {
  if (owner === account.uid) return (mode & (bit << 6)) !== 0;
  if (group === account.gid) return (mode & (bit << 3)) !== 0;
  return (mode & bit) !== 0;
}

/**
 * Throws AGENT_USER_NO_ACCESS unless the agent can reach `dir` (search permission on each
 * directory from / down to it, read on `dir` itself): otherwise every start would fail with an
 * obscure EACCES from the kernel. Supplementary groups are not considered (they would only widen).
 */
export async function checkAgentCanReach(dir: string, account: AgentAccount): Promise<void> {
  const target = resolve(dir);
  for (const path of pathChain(target)) {
    const info = await stat(path);
    const need = path === target ? 5 : 1;
    if ((need & 1) !== 0 && !canSearch(info.mode, info.uid, info.gid, account, 1)) {
      throw new DaemonError(
        'AGENT_USER_NO_ACCESS',
        `The agent user ${account.name} (uid ${account.uid}) cannot reach ${target}: ${path} (mode ${(info.mode & 0o7777).toString(8).padStart(4, '0')}, owner ${info.uid}) has no search permission for it. Run chmod o+x ${path}, or move droverd's state directory (--state-dir) below directories others may search, or remove /agent/user.`,
      );
    }
    if ((need & 4) !== 0 && !canSearch(info.mode, info.uid, info.gid, account, 4)) {
      throw new DaemonError('AGENT_USER_NO_ACCESS', `The agent user ${account.name} (uid ${account.uid}) cannot read ${target}. Run chmod o+rx ${target}, or remove /agent/user.`);
    }
  }
}

/**
 * Throws AGENT_USER_NO_ACCESS unless the agent user can execute `program` (the node droverd starts
 * the agent with): search permission on each directory down to it (after symlinks) and its execute
 * bit. A node unpacked into a root-only directory would fail every start with a bare EACCES.
 */
export async function checkAgentCanExecute(program: string, account: AgentAccount): Promise<void> {
  const file = await realpath(program);
  for (const path of pathChain(file)) {
    const info = await stat(path);
    if (!canSearch(info.mode, info.uid, info.gid, account, 1)) {
      const what = path === file ? 'execute' : 'search';
      throw new DaemonError(
        'AGENT_USER_NO_ACCESS',
        `The agent user ${account.name} (uid ${account.uid}) cannot run ${file}, which droverd starts the agent with: ${path} (mode ${(info.mode & 0o7777).toString(8).padStart(4, '0')}, owner ${info.uid}) gives it no ${what} permission. Run chmod o+x ${path}, or install Node.js where every user may run it, or remove /agent/user.`,
      );
    }
  }
}

/** `path` and every directory above it, from / down. */
function pathChain(path: string): string[] {
  const chain: string[] = [];
  for (let at = path; ; at = dirname(at)) {
    chain.unshift(at);
    if (dirname(at) === at) break;
  }
  return chain;
}

/**
 * The agent's own directory, created if missing (0700, owned by the agent). One that exists must
 * be a real directory (not a symlink: droverd, as root, would follow it) owned by the agent or by
 * root (then handed over); another user's is refused.
 */
export async function prepareAgentDataDir(account: AgentAccount): Promise<void> {
  const dir = account.dataDir;
  await mkdir(dirname(dir), { recursive: true });
  try {
    await mkdir(dir, { mode: 0o700 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  const info = await lstat(dir);
  if (!info.isDirectory()) {
    throw new DaemonError('AGENT_USER_NO_ACCESS', `The agent's data directory ${dir} is not a directory (a symlink or a file). Remove it; droverd creates it for ${account.name}.`);
  }
  if (info.uid !== account.uid && info.uid !== 0) {
    throw new DaemonError('AGENT_USER_NO_ACCESS', `The agent's data directory ${dir} belongs to uid ${info.uid}, not to ${account.name} (uid ${account.uid}). Fix its owner (chown ${account.uid}:${account.gid} ${dir}) or set /agent/dataDir.`);
  }
  if (info.uid !== account.uid || info.gid !== account.gid) {
    // Under the unit droverd has no CAP_CHOWN (decision 0030): install.sh creates the directory for the agent.
    await chown(dir, account.uid, account.gid).catch((error: unknown) => {
      throw new DaemonError('AGENT_USER_NO_ACCESS', `droverd may not hand ${dir} to ${account.name} (${(error as NodeJS.ErrnoException).code ?? 'error'}). Run chown ${account.uid}:${account.gid} ${dir} (install.sh does), then start droverd again.`, { cause: error });
    });
  }
  if ((info.mode & 0o777) !== 0o700) {
    // The directory is the agent's: a mode it set itself is its own choice. Under the unit droverd
    // has no CAP_FOWNER to change it, and that must not stop the agent from starting.
    await chmod(dir, 0o700).catch((error: unknown) => {
      if ((error as NodeJS.ErrnoException).code !== 'EPERM' || info.uid !== account.uid) throw error;
    });
  }
}

/**
 * Lets the agent search (not list) droverd's state directory, so it reaches its release and its data
 * directory: 0700 becomes 0711. droverd's files in it keep their own modes (the secrets 0600).
 * Returns the mode it set, or undefined when nothing changed.
 */
export async function openStateDirForAgent(stateDir: string): Promise<number | undefined> {
  const mode = (await stat(stateDir)).mode & 0o7777;
  if ((mode & 0o001) !== 0) return undefined;
  const next = mode | 0o011;
  await chmod(stateDir, next);
  return next;
}

/** `<state dir>/agent-data`, unless droverd.json names one. */
export function agentDataDir(stateDir: string, configured: string | undefined): string {
  return configured ?? join(stateDir, 'agent-data');
}

/**
 * At droverd's start: the configured agent account, resolved, with its data directory ready and
 * the state directory searchable by it; undefined when the agent runs as droverd's own user.
 */
export async function prepareAgentAccount(
  settings: { user: string | undefined; group: string | undefined; dataDir: string | undefined },
  stateDir: string,
  logger: Logger,
): Promise<AgentAccount | undefined> {
  if (settings.user === undefined) {
    if (process.getuid?.() === 0) {
      logger.warn({ event: 'agent.runs_as_root' }, 'The agent runs as root, with droverd\'s own rights: set /agent/user in droverd.json to a dedicated user (install.sh creates drover)');
    }
    return undefined;
  }
  const account = await resolveAgentAccount(settings.user, settings.group, agentDataDir(stateDir, settings.dataDir));
  const mode = await openStateDirForAgent(stateDir);
  if (mode !== undefined) {
    logger.info({ event: 'state.mode_changed', path: stateDir, mode: mode.toString(8) }, 'The state directory is now searchable (not listable) by the agent user, so it reaches its release');
  }
  await prepareAgentDataDir(account);
  logger.info({ event: 'agent.account', user: account.name, uid: account.uid, gid: account.gid, dataDir: account.dataDir }, `The agent runs as ${account.name}`);
  return account;
}
