import { createHash } from 'node:crypto';
import { chmod, mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import envPaths from 'env-paths';
import { CliError } from '../errors.js';
import { writeFileAtomic } from '../fs-atomic.js';

// The logins `drover login` keeps: one file per manager URL in the user's config directory
// (env-paths: $XDG_CONFIG_HOME/drover/logins on Linux), the directory 0700 and each file 0600,
// written atomically so a command reading it never sees half a file. The tokens in it are bearer
// credentials: they are read and written here, and never printed.

/** What a login holds. */
export interface CachedLogin {
  /** The manager this login is for, as given to `drover login --manager`. */
  managerUrl: string;
  issuer: string;
  clientId: string;
  idToken: string;
  refreshToken?: string | undefined;
  /** When the ID token expires (its `exp`), ISO 8601. */
  expiresAt: string;
}

/** The directory of the logins: `<config dir>/logins`, the config dir from env-paths ('drover', no suffix). */
export function loginDirectory(): string {
  return join(envPaths('drover', { suffix: '' }).config, 'logins');
}

/** The manager URL a login is filed under: its origin and path, without a trailing slash. */
export function normalizeManagerUrl(managerUrl: string): string {
  let url: URL;
  try {
    url = new URL(managerUrl);
  } catch (error) {
    throw new CliError('USAGE_ERROR', `--manager must be a URL such as https://manager.example:8443; got "${managerUrl}".`, { cause: error });
  }
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

/** The file of the login for `managerUrl`: a hash of the URL, so any URL makes a safe file name. */
export function loginPath(directory: string, managerUrl: string): string {
  const key = createHash('sha256').update(normalizeManagerUrl(managerUrl)).digest('hex').slice(0, 32);
  return join(directory, `${key}.json`);
}

function isCachedLogin(value: unknown): value is CachedLogin {
  const login = value as Partial<CachedLogin> | null;
  return (
    typeof login === 'object' &&
    login !== null &&
    typeof login.managerUrl === 'string' &&
    typeof login.issuer === 'string' &&
    typeof login.clientId === 'string' &&
    typeof login.idToken === 'string' &&
    typeof login.expiresAt === 'string' &&
    (login.refreshToken === undefined || typeof login.refreshToken === 'string')
  );
}

/** The login for `managerUrl`, or undefined when there is none (or it is not a login file: then `drover login` writes a new one). */
export async function readLogin(directory: string, managerUrl: string): Promise<CachedLogin | undefined> {
  let text: string;
  try {
    text = await readFile(loginPath(directory, managerUrl), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  let login: unknown;
  try {
    login = JSON.parse(text);
  } catch {
    return undefined;
  }
  return isCachedLogin(login) && normalizeManagerUrl(login.managerUrl) === normalizeManagerUrl(managerUrl) ? login : undefined;
}

/** Writes the login for its manager: directory 0700, file 0600, atomically. Returns the file's path. */
export async function writeLogin(directory: string, login: CachedLogin): Promise<string> {
  await mkdir(directory, { recursive: true, mode: 0o700 });
  // mkdir's mode is masked by the umask and leaves an existing directory as it was: set it exactly.
  await chmod(directory, 0o700);
  const path = loginPath(directory, login.managerUrl);
  await writeFileAtomic(path, `${JSON.stringify(login, null, 2)}\n`, { mode: 0o600 });
  return path;
}

/** Removes the login for `managerUrl`; true when there was one. */
export async function removeLogin(directory: string, managerUrl: string): Promise<boolean> {
  const path = loginPath(directory, managerUrl);
  try {
    await readFile(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
  await rm(path, { force: true });
  return true;
}

/** A JWT's payload, decoded but not verified (the manager verifies); undefined when it is not a JWT's. */
export function jwtClaims(token: string): Record<string, unknown> | undefined {
  try {
    const claims: unknown = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8'));
    return typeof claims === 'object' && claims !== null ? (claims as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Seconds since the epoch at which a JWT says it expires: only to decide when to refresh it. */
export function jwtExpiry(token: string): number | undefined {
  const exp = jwtClaims(token)?.['exp'];
  return typeof exp === 'number' && Number.isFinite(exp) ? exp : undefined;
}
