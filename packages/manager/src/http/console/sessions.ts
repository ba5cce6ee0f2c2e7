import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { ManagerContext } from '../../context.js';
import { ManagerError } from '../../errors.js';

/** The cookie that carries a console session's opaque id. */
export const SESSION_COOKIE = 'drover_session';
/** The header a cookie-authenticated state-changing request carries its CSRF token in. */
export const CSRF_HEADER = 'x-drover-csrf';
/** The cookie that binds a browser sign-in in progress (its state) to the browser that started it. */
export const LOGIN_COOKIE = 'drover_login';
const SESSION_TTL_MS = 8 * 60 * 60 * 1000; // 8 hours
const SESSIONS_MAX = 10_000; // sessions held at once; the oldest is dropped beyond it

export interface ConsoleSession {
  id: string;
  csrfToken: string;
  // The operator token the session was opened with, or the person's ID token (a sign-in through
  // the issuer): every request re-authenticates with it, so a token removed from the manager ends
  // its sessions too, and a person's role follows the group mapping.
  token: string;
  expiresAt: number; // ms since the epoch: at most 8 hours, and never after the ID token's exp
}

/**
 * The console's sessions, in this process's memory: a session opened on one replica is unknown
 * to another (docs/decisions/0043-web-console.md).
 */
export class SessionStore {
  readonly #sessions = new Map<string, ConsoleSession>();

  constructor(private readonly now: () => number = Date.now) {}

  /** Opens a session for `token`, ending after 8 hours or at `notAfter` (ms since the epoch), whichever comes first. */
  open(token: string, notAfter = Number.POSITIVE_INFINITY): ConsoleSession {
    if (this.#sessions.size >= SESSIONS_MAX) {
      const oldest = this.#sessions.keys().next().value;
      if (oldest !== undefined) this.#sessions.delete(oldest);
    }
    const session = { id: randomBytes(32).toString('base64url'), csrfToken: randomBytes(32).toString('base64url'), token, expiresAt: Math.min(this.now() + SESSION_TTL_MS, notAfter) };
    this.#sessions.set(session.id, session);
    return session;
  }

  get(id: string | undefined): ConsoleSession | undefined {
    if (id === undefined) return undefined;
    const session = this.#sessions.get(id);
    if (session === undefined) return undefined;
    if (session.expiresAt <= this.now()) {
      this.#sessions.delete(id);
      return undefined;
    }
    return session;
  }

  close(id: string): void {
    this.#sessions.delete(id);
  }
}

const stores = new WeakMap<ManagerContext, SessionStore>();

/** The session store of a manager (one per context, shared by every route plugin). */
export function sessionsOf(ctx: ManagerContext): SessionStore {
  let store = stores.get(ctx);
  if (store === undefined) {
    store = new SessionStore();
    stores.set(ctx, store);
  }
  return store;
}

/** The value of one cookie of a request, or undefined. */
export function cookieOf(request: FastifyRequest, name: string): string | undefined {
  const header = request.headers.cookie;
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** Whether a presented secret is the expected one, compared in constant time. */
export function sameSecret(presented: string, expected: string): boolean {
  const a = Buffer.from(presented);
  const b = Buffer.from(expected);
  // timing: compare in constant time; a length mismatch is refused without comparing.
  return a.length === b.length && timingSafeEqual(a, b);
}

const SAFE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS']);

/** Checks a cookie-authenticated request's CSRF header against its session's token. */
export function checkCsrf(request: FastifyRequest, session: ConsoleSession): void {
  if (SAFE_METHODS.has(request.method)) return;
  const presented = request.headers[CSRF_HEADER];
  // csrf: another site can make the browser send the cookie, but cannot read the token to send it back.
  if (typeof presented !== 'string' || !sameSecret(presented, session.csrfToken)) {
    throw new ManagerError('CSRF_TOKEN_INVALID', `A request authenticated by the console's session cookie that changes state must carry the session's CSRF token in the ${CSRF_HEADER} header; reload the console (or send Authorization: Bearer instead of the cookie).`);
  }
}

/**
 * The Authorization header an operator request authenticates with: its own bearer header when
 * it has one, else the operator token of its console session (after the CSRF check).
 */
export function operatorAuthorization(ctx: ManagerContext, request: FastifyRequest): string | undefined {
  if (request.headers.authorization !== undefined) return request.headers.authorization;
  const session = sessionsOf(ctx).get(cookieOf(request, SESSION_COOKIE));
  if (session === undefined) return undefined;
  checkCsrf(request, session);
  return `Bearer ${session.token}`;
}
