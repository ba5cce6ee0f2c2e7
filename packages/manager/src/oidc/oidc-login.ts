import { createHash, randomBytes } from 'node:crypto';
import { ManagerError } from '../errors.js';
import type { OidcVerifier } from './oidc-verifier.js';

// The console's browser sign-in (decision 0044): the authorization code flow with PKCE (RFC 7636,
// S256). The state, nonce and code verifier of a sign-in in progress stay in this process's memory,
// keyed by the state; the browser holds only the state, in a short-lived cookie.

export const oidcLoginLimits = {
  pendingTtlMs: 10 * 60_000, // milliseconds a sign-in may take between /ui/login and /ui/callback
  pendingMax: 10_000, // sign-ins in progress held at once; the oldest is dropped beyond it
  tokenResponseMaxBytes: 64 * 1024, // bytes of the token endpoint's answer read
} as const;

/** A sign-in between its redirect to the issuer and the issuer's redirect back. */
export interface PendingLogin {
  state: string;
  nonce: string;
  codeVerifier: string;
  redirectUri: string;
  createdAt: number; // ms since the epoch
}

const random = (): string => randomBytes(32).toString('base64url');

/** RFC 6749 2.3.1: the client id and secret of HTTP Basic are form-urlencoded first. */
function basicAuth(clientId: string, secret: string): string {
  const encode = (value: string): string => encodeURIComponent(value).replace(/%20/g, '+');
  return `Basic ${Buffer.from(`${encode(clientId)}:${encode(secret)}`).toString('base64')}`;
}

/** The console's sign-ins in progress, for one issuer. */
export class OidcLogins {
  readonly #pending = new Map<string, PendingLogin>();

  constructor(
    private readonly verifier: OidcVerifier,
    private readonly now: () => number = Date.now,
  ) {}

  /** Starts a sign-in: its state, and the issuer's authorization URL the browser is sent to. */
  async begin(redirectUri: string): Promise<{ state: string; location: URL }> {
    const location = await this.verifier.endpoint('authorization_endpoint');
    if (this.#pending.size >= oidcLoginLimits.pendingMax) {
      const oldest = this.#pending.keys().next().value;
      if (oldest !== undefined) this.#pending.delete(oldest);
    }
    const pending: PendingLogin = { state: random(), nonce: random(), codeVerifier: random(), redirectUri, createdAt: this.now() };
    this.#pending.set(pending.state, pending);
    const params = location.searchParams;
    params.set('response_type', 'code');
    params.set('client_id', this.verifier.config.audience);
    params.set('redirect_uri', redirectUri);
    params.set('scope', 'openid profile email');
    params.set('state', pending.state);
    params.set('nonce', pending.nonce);
    params.set('code_challenge', createHash('sha256').update(pending.codeVerifier).digest('base64url'));
    params.set('code_challenge_method', 'S256');
    return { state: pending.state, location };
  }

  /** The sign-in a state names, once: a state is spent by its first callback, and dies after pendingTtlMs. */
  take(state: string): PendingLogin | undefined {
    const pending = this.#pending.get(state);
    this.#pending.delete(state);
    if (pending === undefined || this.now() - pending.createdAt > oidcLoginLimits.pendingTtlMs) return undefined;
    return pending;
  }

  /** Exchanges the issuer's code (with the PKCE verifier, and the client secret when configured) for the ID token. */
  async exchange(pending: PendingLogin, code: string): Promise<string> {
    const tokenEndpoint = await this.verifier.endpoint('token_endpoint');
    const { audience: clientId, clientSecret } = this.verifier.config;
    const form = new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: pending.redirectUri, code_verifier: pending.codeVerifier });
    // A public client names itself in the form; a confidential one authenticates with HTTP Basic.
    if (clientSecret === undefined) form.set('client_id', clientId);
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
    if (clientSecret !== undefined) headers['authorization'] = basicAuth(clientId, clientSecret);
    let response;
    try {
      // A code is good for one exchange: never retried.
      response = await this.verifier.http.json({ method: 'POST', url: tokenEndpoint, headers, body: form.toString(), retry: false, deadlineMs: 15_000, maxBytes: oidcLoginLimits.tokenResponseMaxBytes });
    } catch (error) {
      throw new ManagerError('OIDC_TOKEN_EXCHANGE_FAILED', `The issuer's token endpoint (${tokenEndpoint.origin}${tokenEndpoint.pathname}) could not be reached; check that the manager reaches ${this.verifier.config.issuer}, then sign in again.`, { cause: error });
    }
    const body = typeof response.body === 'object' && response.body !== null ? (response.body as Record<string, unknown>) : {};
    const idToken = body['id_token'];
    if (response.status !== 200 || typeof idToken !== 'string') {
      // The issuer's error code says why (invalid_grant, invalid_client, ...); the code and secret are never repeated.
      const reason = typeof body['error'] === 'string' ? body['error'].replace(/[^\w.-]/g, '').slice(0, 64) : `HTTP ${response.status}`;
      throw new ManagerError(
        'OIDC_TOKEN_EXCHANGE_FAILED',
        `The issuer's token endpoint refused the sign-in's code (${reason}${response.status === 200 ? ', no id_token' : ''}). Sign in again; if it persists, check the client (${clientId}) registration: its redirect URI, PKCE, and whether it needs a client secret.`,
      );
    }
    return idToken;
  }
}

const logins = new WeakMap<OidcVerifier, OidcLogins>();

/** The sign-ins in progress against a manager's issuer (one store per verifier). */
export function oidcLoginsOf(verifier: OidcVerifier): OidcLogins {
  let store = logins.get(verifier);
  if (store === undefined) {
    store = new OidcLogins(verifier);
    logins.set(verifier, store);
  }
  return store;
}
