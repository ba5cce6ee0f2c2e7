import type { HttpClient } from '@drover/http';
import { isDroverError } from '@drover/protocol';
import { CliError } from '../errors.js';
import { discoverIssuer, refreshTokens } from './device-flow.js';
import type { TokenSet } from './device-flow.js';
import { jwtExpiry, normalizeManagerUrl, readLogin, writeLogin } from './token-cache.js';
import type { CachedLogin } from './token-cache.js';

// A person's login as operator commands use it: the cached ID token while it has more than a
// minute left, else a new one from the refresh token (the cache rewritten with it, and with the
// rotated refresh token the issuer may hand out).

/** Seconds before its expiry at which an ID token is refreshed rather than sent: a request in flight must not outlive it. */
export const refreshMarginSeconds = 60;

/** The login to cache for tokens the issuer just handed out; `previous` keeps a refresh token the issuer did not rotate. */
export function loginOf(tokens: TokenSet, context: { managerUrl: string; issuer: string; clientId: string; nowMs: number }, previous?: CachedLogin): CachedLogin {
  // The ID token's own exp is what the manager checks; expires_in (the access token's) only stands in for it.
  const exp = jwtExpiry(tokens.idToken) ?? Math.floor(context.nowMs / 1000) + (tokens.expiresInSeconds ?? 0);
  return {
    managerUrl: normalizeManagerUrl(context.managerUrl),
    issuer: context.issuer,
    clientId: context.clientId,
    idToken: tokens.idToken,
    refreshToken: tokens.refreshToken ?? previous?.refreshToken,
    expiresAt: new Date(exp * 1000).toISOString(),
  };
}

export interface CachedTokenOptions {
  directory: string;
  managerUrl: string;
  http: HttpClient;
  /** Milliseconds since the epoch; default Date.now. */
  now?: () => number;
}

/**
 * The ID token of the cached login for `managerUrl`, refreshed when it expires within
 * {@link refreshMarginSeconds}; undefined when there is no login. A refresh that fails is
 * LOGIN_REFRESH_FAILED, which says to run `drover login` again.
 */
export async function cachedIdToken(options: CachedTokenOptions): Promise<string | undefined> {
  const now = options.now ?? Date.now;
  const login = await readLogin(options.directory, options.managerUrl);
  if (login === undefined) return undefined;
  const expiresAtMs = Date.parse(login.expiresAt);
  if (Number.isFinite(expiresAtMs) && expiresAtMs - now() > refreshMarginSeconds * 1000) return login.idToken;

  const again = `Run \`drover login --manager ${login.managerUrl}\` again.`;
  if (login.refreshToken === undefined) throw new CliError('LOGIN_REFRESH_FAILED', `The login for ${login.managerUrl} has expired and holds no refresh token. ${again}`);
  let tokens: TokenSet;
  try {
    const metadata = await discoverIssuer(options.http, login.issuer);
    tokens = await refreshTokens(options.http, metadata, login.clientId, login.refreshToken);
  } catch (error) {
    if (!isDroverError(error)) throw error;
    // Two commands refreshing at once spend the same refresh token: the one that lost finds the other's tokens written.
    const current = await readLogin(options.directory, options.managerUrl);
    if (current !== undefined && current.idToken !== login.idToken && Date.parse(current.expiresAt) - now() > refreshMarginSeconds * 1000) return current.idToken;
    throw new CliError('LOGIN_REFRESH_FAILED', `The login for ${login.managerUrl} has expired and could not be refreshed at ${login.issuer}: ${error.message} ${again}`, { cause: error });
  }
  const refreshed = loginOf(tokens, { managerUrl: login.managerUrl, issuer: login.issuer, clientId: login.clientId, nowMs: now() }, login);
  await writeLogin(options.directory, refreshed);
  return refreshed.idToken;
}
