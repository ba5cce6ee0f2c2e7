import { HttpClient, userAgent } from '@drover/http';
import { createLocalJWKSet, errors, jwtVerify } from 'jose';
import type { JSONWebKeySet, JWTPayload, JWTVerifyGetKey } from 'jose';
import { ManagerError } from '../errors.js';
import { PACKAGE_VERSION } from '../version.js';
import { isAllowedIssuerUrl, personRoles } from './oidc-config.js';
import type { OidcConfig, PersonRole } from './oidc-config.js';

// Checks a person's ID token (decision 0042) against the issuer's published keys: signature, issuer,
// audience, expiry, then maps its groups to a role. Discovery and JWKS go through @drover/http like
// every other outbound call of the manager.

export const oidcLimits = {
  clockToleranceSeconds: 60, // seconds of clock skew allowed on exp and nbf
  jwksMaxAgeMs: 10 * 60_000, // milliseconds the issuer's keys are used before being fetched again
  jwksRefetchCooldownMs: 30_000, // milliseconds: a token with an unknown kid refetches the keys at most this often
  discoveryMaxBytes: 64 * 1024, // bytes of the discovery document read
  jwksMaxBytes: 256 * 1024, // bytes of the JWKS read
  tokenMaxChars: 16 * 1024, // characters of a bearer taken for a JWT at all
} as const;

// forgery: asymmetric algorithms only. `none` carries no signature, and HS* would let anyone who
// knows the client secret (or a public client's empty one) mint tokens.
const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];

const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/** Whether a bearer is shaped like a JWS compact JWT (three base64url parts): worth handing to the verifier. */
export function looksLikeJwt(token: string): boolean {
  return token.length <= oidcLimits.tokenMaxChars && JWT_SHAPE.test(token);
}

/** A person the issuer vouched for, with the role their groups map to. */
export interface OidcPerson {
  subject: string;
  email: string | undefined;
  groups: string[];
  role: PersonRole;
}

interface KeySet {
  getKey: JWTVerifyGetKey;
  fetchedAt: number;
}

function stringsOf(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  return Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : [];
}

/** Verifies ID tokens from one issuer; keeps its keys in memory, refetched when old or when a token names a new key. */
export class OidcVerifier {
  readonly config: OidcConfig & { groupsClaim: string };
  readonly #http: HttpClient;
  readonly #now: () => Date;
  #cached: KeySet | undefined;
  #discovery: { document: Record<string, unknown>; fetchedAt: number } | undefined;
  #pending: Promise<KeySet> | undefined;
  #lastFetch = Number.NEGATIVE_INFINITY;

  constructor(config: OidcConfig, options: { http?: HttpClient | undefined; now?: (() => Date) | undefined } = {}) {
    this.config = { ...config, groupsClaim: config.groupsClaim ?? 'groups' };
    this.#now = options.now ?? (() => new Date());
    this.#http =
      options.http ??
      new HttpClient({
        userAgent: userAgent('drover-manager', PACKAGE_VERSION),
        timeouts: { connectMs: 5_000, headersMs: 10_000, bodyMs: 10_000 },
        retry: { maxAttempts: 2 },
        maxResponseBytes: oidcLimits.jwksMaxBytes,
      });
  }

  async #getJson(url: string, maxBytes: number, what: string): Promise<Record<string, unknown>> {
    let response;
    try {
      response = await this.#http.json({ method: 'GET', url, maxBytes, deadlineMs: 15_000 });
    } catch (error) {
      throw new ManagerError('OIDC_UNAVAILABLE', `The OIDC issuer's ${what} (${url}) could not be fetched; check that the manager reaches ${this.config.issuer}.`, { cause: error });
    }
    if (response.status !== 200 || typeof response.body !== 'object' || response.body === null) {
      throw new ManagerError('OIDC_UNAVAILABLE', `The OIDC issuer's ${what} (${url}) answered ${response.status} without a JSON object; check the issuer URL in manager.json's oidc.`);
    }
    return response.body as Record<string, unknown>;
  }

  /** The issuer's discovery document, checked to name the configured issuer; kept as long as the keys, refetched with them. */
  async discovery(refresh = false): Promise<Record<string, unknown>> {
    const cached = this.#discovery;
    if (!refresh && cached !== undefined && Date.now() - cached.fetchedAt < oidcLimits.jwksMaxAgeMs) return cached.document;
    const discoveryUrl = `${this.config.issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
    const discovery = await this.#getJson(discoveryUrl, oidcLimits.discoveryMaxBytes, 'discovery document');
    // OpenID Connect Discovery 4.3: the document names the very issuer it was fetched for.
    if (discovery['issuer'] !== this.config.issuer) {
      throw new ManagerError('OIDC_UNAVAILABLE', `The discovery document at ${discoveryUrl} names the issuer ${String(discovery['issuer'])}, not ${this.config.issuer}; set manager.json's oidc.issuer to the issuer's exact URL.`);
    }
    this.#discovery = { document: discovery, fetchedAt: Date.now() };
    return discovery;
  }

  /** An endpoint the discovery document names (`authorization_endpoint`, `token_endpoint`, …): https, or http on a loopback address. */
  async endpoint(name: string, refresh = false): Promise<URL> {
    const value = (await this.discovery(refresh))[name];
    if (typeof value !== 'string' || !URL.canParse(value) || !isAllowedIssuerUrl(new URL(value))) {
      throw new ManagerError('OIDC_UNAVAILABLE', `The discovery document of ${this.config.issuer} has no https ${name}; the issuer cannot be used for this.`);
    }
    return new URL(value);
  }

  /** The client that talks to the issuer (discovery, keys, the console's token exchange). */
  get http(): HttpClient {
    return this.#http;
  }

  async #fetchKeys(): Promise<KeySet> {
    this.#lastFetch = Date.now();
    const jwksUri = (await this.endpoint('jwks_uri', true)).href;
    const jwks = await this.#getJson(jwksUri, oidcLimits.jwksMaxBytes, 'key set');
    if (!Array.isArray(jwks['keys'])) throw new ManagerError('OIDC_UNAVAILABLE', `The issuer's key set at ${jwksUri} has no keys array.`);
    return { getKey: createLocalJWKSet(jwks as unknown as JSONWebKeySet), fetchedAt: Date.now() };
  }

  async #keySet(refresh: boolean): Promise<KeySet> {
    const cached = this.#cached;
    if (!refresh && cached !== undefined && Date.now() - cached.fetchedAt < oidcLimits.jwksMaxAgeMs) return cached;
    // One fetch at a time, shared by every request waiting for it; a failed fetch is not kept.
    this.#pending ??= this.#fetchKeys()
      .then((set) => {
        this.#cached = set;
        return set;
      })
      .finally(() => {
        this.#pending = undefined;
      });
    return this.#pending;
  }

  /** The key a token names: from the cached set, else (a rotation) from a fresh fetch, at most once per cooldown. */
  readonly #getKey: JWTVerifyGetKey = async (header, token) => {
    const set = await this.#keySet(false);
    try {
      return await set.getKey(header, token);
    } catch (error) {
      // dos: a stream of tokens with made-up kids cannot make the manager hammer the issuer.
      if (!(error instanceof errors.JWKSNoMatchingKey) || Date.now() - this.#lastFetch < oidcLimits.jwksRefetchCooldownMs) throw error;
      return (await this.#keySet(true)).getKey(header, token);
    }
  };

  /** Verifies an ID token and maps its groups to a role; throws the ManagerError that says which check failed. */
  async verify(token: string): Promise<OidcPerson> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.#getKey, {
        issuer: this.config.issuer,
        audience: this.config.audience,
        algorithms: ALGORITHMS,
        clockTolerance: oidcLimits.clockToleranceSeconds,
        currentDate: this.#now(),
        requiredClaims: ['sub', 'exp'],
      }));
    } catch (error) {
      throw refusal(error);
    }
    const groups = stringsOf(payload[this.config.groupsClaim]);
    let role: PersonRole | undefined;
    for (const group of groups) {
      const mapped = Object.hasOwn(this.config.groupRoles, group) ? this.config.groupRoles[group] : undefined;
      if (mapped !== undefined && (role === undefined || personRoles.indexOf(mapped) > personRoles.indexOf(role))) role = mapped;
    }
    const subject = payload.sub ?? '';
    const email = typeof payload['email'] === 'string' ? payload['email'] : undefined;
    if (role === undefined) {
      throw new ManagerError('ROLE_NONE', `${email ?? subject} is in no group this manager maps to a role (claim "${this.config.groupsClaim}"). Ask an administrator to add you to one of: ${Object.keys(this.config.groupRoles).join(', ')}.`, {
        details: { subject },
      });
    }
    return { subject, email, groups, role };
  }
}

/** The stable code of a token jose refused, with what to do next. */
function refusal(error: unknown): ManagerError {
  if (error instanceof ManagerError) return error;
  if (error instanceof errors.JWTExpired) return new ManagerError('OIDC_TOKEN_EXPIRED', 'The ID token has expired. Log in again with `drover login` (the CLI refreshes it by itself while the refresh token lasts).', { cause: error });
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.claim === 'iss') return new ManagerError('OIDC_ISSUER_MISMATCH', 'The ID token was issued by another issuer than the one this manager trusts. Log in with `drover login` against this manager.', { cause: error });
    if (error.claim === 'aud') return new ManagerError('OIDC_AUDIENCE_MISMATCH', "The ID token is for another client than this manager's. Log in with `drover login` against this manager.", { cause: error });
    if (error.claim === 'nbf') return new ManagerError('OIDC_TOKEN_INVALID', "The ID token is not valid yet (nbf); check the clocks of the issuer and the manager.", { cause: error });
  }
  if (error instanceof errors.JOSEAlgNotAllowed) return new ManagerError('OIDC_TOKEN_INVALID', 'The ID token is signed with an algorithm this manager does not accept (only RS*, PS*, ES* and EdDSA).', { cause: error });
  return new ManagerError('OIDC_TOKEN_INVALID', 'The ID token failed verification (signature, key or format). Log in again with `drover login`.', { cause: error });
}
