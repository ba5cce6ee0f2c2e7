import type { HttpClient } from '@drover/http';
import { HttpError } from '@drover/http';
import { CliError } from '../errors.js';
import { printable } from '../manager-client.js';

// `drover login`'s side of OpenID Connect: the issuer's discovery document, the device
// authorization grant (RFC 8628) and the refresh token grant (RFC 6749 section 6), as a public
// client (no secret: the CLI cannot keep one). Tokens pass through here and into the cache; no
// message, error or log line ever holds one.

export const deviceFlowLimits = {
  defaultIntervalSeconds: 5, // RFC 8628 3.2: the wait between polls when the issuer names none
  slowDownSeconds: 5, // RFC 8628 3.5: added to the interval at each slow_down
  maxIntervalSeconds: 60, // the longest wait between polls, whatever the issuer asks
  defaultExpiresInSeconds: 600, // how long a device code lives when the issuer does not say
  requestTimeoutMs: 30_000, // milliseconds for one call to the issuer
} as const;

const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

/** What the CLI reads of the issuer's discovery document (OpenID Connect Discovery 1.0). */
export interface IssuerMetadata {
  issuer: string;
  tokenEndpoint: string;
  deviceAuthorizationEndpoint: string | undefined;
  /** RFC 7009 token revocation, where `drover logout` revokes the refresh token. */
  revocationEndpoint: string | undefined;
  scopesSupported: readonly string[] | undefined;
}

/** The issuer's answer to a device authorization request (RFC 8628 3.2). */
export interface DeviceAuthorization {
  deviceCode: string;
  userCode: string;
  verificationUri: string;
  verificationUriComplete: string | undefined;
  expiresInSeconds: number;
  intervalSeconds: number;
}

/** The tokens a grant hands out. */
export interface TokenSet {
  idToken: string;
  refreshToken: string | undefined;
  /** Seconds the access token lives, as the issuer said (the ID token's own `exp` is what counts). */
  expiresInSeconds: number | undefined;
}

function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}

/** An issuer URL the CLI may talk to: https, or http on a loopback address (a test issuer). Throws LOGIN_UNAVAILABLE. */
export function issuerUrl(text: string, what: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch (error) {
    throw new CliError('LOGIN_UNAVAILABLE', `The ${what} "${text}" is not a URL; check the manager's OIDC configuration.`, { cause: error });
  }
  // spoofing: over plain http anyone on the path could answer for the issuer and collect the codes.
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopback(url.hostname))) {
    throw new CliError('LOGIN_UNAVAILABLE', `The ${what} ${url.origin} is not https; the CLI talks to an issuer over https only (http only on a loopback address).`);
  }
  return url;
}

function stringMember(body: unknown, name: string): string | undefined {
  const value = (body as Record<string, unknown> | undefined)?.[name];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

function numberMember(body: unknown, name: string): number | undefined {
  const value = (body as Record<string, unknown> | undefined)?.[name];
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? value : undefined;
}

/** Control characters out, length bounded: text from the issuer that reaches the terminal. */
function shown(text: string): string {
  return printable(text).slice(0, 512);
}

async function call(http: HttpClient, url: string, init: { form?: Record<string, string> }, what: string): Promise<{ status: number; body: unknown }> {
  try {
    const response = await http.json({
      method: init.form === undefined ? 'GET' : 'POST',
      url,
      timeoutMs: deviceFlowLimits.requestTimeoutMs,
      // A token request is sent once: a repeated device code poll or refresh could be counted twice.
      retry: init.form === undefined,
      ...(init.form === undefined ? {} : { headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(init.form).toString() }),
    });
    return { status: response.status, body: response.body };
  } catch (error) {
    if (!(error instanceof HttpError)) throw error;
    const code = (error.cause as { code?: unknown } | undefined)?.code;
    throw new CliError('NETWORK_ERROR', `Failed to reach the OIDC issuer for ${what} at ${new URL(url).origin} (${typeof code === 'string' ? code : error.code}). Check the network and that the issuer is up.`, { cause: error });
  }
}

/** Reads `issuer`'s discovery document and checks it names that same issuer. */
export async function discoverIssuer(http: HttpClient, issuer: string): Promise<IssuerMetadata> {
  const base = issuerUrl(issuer, 'OIDC issuer');
  const where = `${base.href.replace(/\/+$/, '')}/.well-known/openid-configuration`;
  const { status, body } = await call(http, where, {}, 'its discovery document');
  if (status !== 200 || typeof body !== 'object' || body === null) {
    throw new CliError('LOGIN_UNAVAILABLE', `The OIDC issuer ${issuer} answered ${status} for ${where}, not a discovery document. Check the manager's oidc.issuer.`);
  }
  // mix-up: a document that names another issuer is another issuer's; its endpoints are not this one's.
  if (stringMember(body, 'issuer') !== issuer) throw new CliError('LOGIN_UNAVAILABLE', `The discovery document at ${where} names another issuer; the manager's oidc.issuer must be exactly the issuer's URL.`);
  const tokenEndpoint = stringMember(body, 'token_endpoint');
  if (tokenEndpoint === undefined) throw new CliError('LOGIN_UNAVAILABLE', `The OIDC issuer ${issuer} names no token_endpoint.`);
  const device = stringMember(body, 'device_authorization_endpoint');
  const revocation = stringMember(body, 'revocation_endpoint');
  issuerUrl(tokenEndpoint, 'token endpoint');
  if (device !== undefined) issuerUrl(device, 'device authorization endpoint');
  if (revocation !== undefined) issuerUrl(revocation, 'revocation endpoint');
  const scopes = (body as { scopes_supported?: unknown }).scopes_supported;
  return {
    issuer,
    tokenEndpoint,
    deviceAuthorizationEndpoint: device,
    revocationEndpoint: revocation,
    scopesSupported: Array.isArray(scopes) ? scopes.filter((scope): scope is string => typeof scope === 'string') : undefined,
  };
}

/** `openid`, and `offline_access` (a refresh token) unless the issuer says it has no such scope. */
export function loginScope(metadata: IssuerMetadata): string {
  return metadata.scopesSupported === undefined || metadata.scopesSupported.includes('offline_access') ? 'openid offline_access' : 'openid';
}

/** The issuer's OAuth error body, as a code and a printable description. */
function oauthError(body: unknown): { error: string | undefined; description: string } {
  const description = stringMember(body, 'error_description');
  return { error: stringMember(body, 'error'), description: description === undefined ? '' : ` (${shown(description)})` };
}

/** RFC 8628 3.1: asks the issuer for a device code and a user code. */
export async function startDeviceAuthorization(http: HttpClient, metadata: IssuerMetadata, clientId: string): Promise<DeviceAuthorization> {
  if (metadata.deviceAuthorizationEndpoint === undefined) {
    throw new CliError('LOGIN_UNAVAILABLE', `The OIDC issuer ${metadata.issuer} offers no device authorization grant (no device_authorization_endpoint); ask its administrator to enable it for client ${clientId}.`);
  }
  const { status, body } = await call(http, metadata.deviceAuthorizationEndpoint, { form: { client_id: clientId, scope: loginScope(metadata) } }, 'a device code');
  const deviceCode = stringMember(body, 'device_code');
  const userCode = stringMember(body, 'user_code');
  const verificationUri = stringMember(body, 'verification_uri');
  if (status !== 200 || deviceCode === undefined || userCode === undefined || verificationUri === undefined) {
    const { error, description } = oauthError(body);
    throw new CliError('OIDC_PROVIDER_ERROR', `The OIDC issuer refused a device code for client ${clientId}: ${error ?? `HTTP ${status}`}${description}. Check that the client is registered as public with the device code grant.`);
  }
  const complete = stringMember(body, 'verification_uri_complete');
  return {
    deviceCode,
    userCode: shown(userCode),
    verificationUri: shown(verificationUri),
    verificationUriComplete: complete === undefined ? undefined : shown(complete),
    expiresInSeconds: numberMember(body, 'expires_in') ?? deviceFlowLimits.defaultExpiresInSeconds,
    intervalSeconds: Math.min(numberMember(body, 'interval') ?? deviceFlowLimits.defaultIntervalSeconds, deviceFlowLimits.maxIntervalSeconds),
  };
}

function tokenSet(body: unknown): TokenSet | undefined {
  const idToken = stringMember(body, 'id_token');
  if (idToken === undefined) return undefined;
  return { idToken, refreshToken: stringMember(body, 'refresh_token'), expiresInSeconds: numberMember(body, 'expires_in') };
}

export interface PollOptions {
  /** Waits `ms` (tests pass a fake clock); default a timer. */
  sleep?: (ms: number) => Promise<void>;
  /** Milliseconds since the epoch; default Date.now. */
  now?: () => number;
}

const sleepFor = (ms: number): Promise<void> =>
  new Promise((resolve) => {
    setTimeout(resolve, ms);
  });

/**
 * RFC 8628 3.4-3.5: polls the token endpoint every `interval` seconds until the person approves
 * (the tokens), denies (LOGIN_DENIED) or the code expires (DEVICE_CODE_EXPIRED).
 */
export async function pollDeviceToken(http: HttpClient, metadata: IssuerMetadata, clientId: string, authorization: DeviceAuthorization, options: PollOptions = {}): Promise<TokenSet> {
  const sleep = options.sleep ?? sleepFor;
  const now = options.now ?? Date.now;
  const deadline = now() + authorization.expiresInSeconds * 1000;
  let interval = authorization.intervalSeconds;
  const expired = (): CliError => new CliError('DEVICE_CODE_EXPIRED', `The code ${authorization.userCode} expired before it was approved. Run \`drover login\` again and approve the new code in time.`);
  for (;;) {
    // RFC 8628 3.5: wait `interval` before each request, the first one included.
    await sleep(interval * 1000);
    if (now() >= deadline) throw expired();
    const { status, body } = await call(http, metadata.tokenEndpoint, { form: { grant_type: DEVICE_GRANT, device_code: authorization.deviceCode, client_id: clientId } }, 'the tokens');
    if (status === 200) {
      const tokens = tokenSet(body);
      if (tokens === undefined) throw new CliError('OIDC_PROVIDER_ERROR', 'The OIDC issuer answered the device code without an ID token; check that the client may use the openid scope.');
      return tokens;
    }
    const { error, description } = oauthError(body);
    switch (error) {
      case 'authorization_pending':
        continue;
      case 'slow_down':
        interval = Math.min(interval + deviceFlowLimits.slowDownSeconds, deviceFlowLimits.maxIntervalSeconds);
        continue;
      case 'access_denied':
        throw new CliError('LOGIN_DENIED', `The login was denied at the issuer${description}. Run \`drover login\` again to retry.`);
      case 'expired_token':
        throw expired();
      default:
        throw new CliError('OIDC_PROVIDER_ERROR', `The OIDC issuer refused the device code: ${error ?? `HTTP ${status}`}${description}. Run \`drover login\` again.`);
    }
  }
}

/** RFC 6749 section 6: new tokens for a refresh token. A refusal is LOGIN_REFRESH_FAILED (the caller says what to do next). */
export async function refreshTokens(http: HttpClient, metadata: IssuerMetadata, clientId: string, refreshToken: string): Promise<TokenSet> {
  const { status, body } = await call(http, metadata.tokenEndpoint, { form: { grant_type: 'refresh_token', refresh_token: refreshToken, client_id: clientId } }, 'a token refresh');
  const tokens = status === 200 ? tokenSet(body) : undefined;
  if (tokens === undefined) {
    const { error, description } = oauthError(body);
    throw new CliError('LOGIN_REFRESH_FAILED', `The OIDC issuer refused to refresh the login: ${error ?? (status === 200 ? 'no ID token' : `HTTP ${status}`)}${description}.`);
  }
  return tokens;
}

/** RFC 7009: revokes a refresh token at the issuer; false when the issuer has no revocation endpoint or refuses. */
export async function revokeRefreshToken(http: HttpClient, metadata: IssuerMetadata, clientId: string, refreshToken: string): Promise<boolean> {
  if (metadata.revocationEndpoint === undefined) return false;
  const { status } = await call(http, metadata.revocationEndpoint, { form: { token: refreshToken, token_type_hint: 'refresh_token', client_id: clientId } }, 'the revocation');
  return status === 200;
}
