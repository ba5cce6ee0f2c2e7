import { readFile } from 'node:fs/promises';
import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ManagerContext } from '../../context.js';
import type { ManagerCore } from '../../server/core.js';
import { decodeJwt } from 'jose';
import { ManagerError } from '../../errors.js';
import { oidcLoginLimits, oidcLoginsOf } from '../../oidc/oidc-login.js';
import type { OidcVerifier } from '../../oidc/oidc-verifier.js';
import { authenticateOperator, auditTokenUse } from '../operator-auth.js';
import { statusOf } from '../status.js';
import { checkCsrf, cookieOf, LOGIN_COOKIE, SESSION_COOKIE, sameSecret, sessionsOf } from './sessions.js';

// The bundle `npm run build` writes (scripts/build-console.mjs) into the package's dist/console/;
// the same path from src/ (tests) and dist/ (the built package).
const ASSETS = new URL('../../../dist/console/', import.meta.url);
const FILES: Readonly<Record<string, string>> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
};

// No inline script or style: an injected string can never run.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const SessionBodySchema = Type.Object({ token: Type.String({ minLength: 1, maxLength: 512 }) }, { additionalProperties: false });

function secureHeaders(reply: FastifyReply): FastifyReply {
  return reply
    .header('content-security-policy', CSP)
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    .header('x-frame-options', 'DENY');
}

function sessionCookie(request: FastifyRequest, value: string, maxAgeSeconds: number): string {
  const secure = request.protocol === 'https' ? '; Secure' : '';
  return `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeSeconds}${secure}`;
}

// The sign-in's state cookie is Lax, not Strict: the issuer's redirect back to /ui/callback is a
// cross-site navigation, which a Strict cookie would not follow.
function loginCookie(request: FastifyRequest, value: string, maxAgeSeconds: number): string {
  const secure = request.protocol === 'https' ? '; Secure' : '';
  return `${LOGIN_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Lax; Max-Age=${maxAgeSeconds}${secure}`;
}

const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** A sign-in that failed, as a page (the browser arrived by a redirect, not by a script): its code, what to do, a way back. */
function failurePage(reply: FastifyReply, error: ManagerError): FastifyReply {
  const body = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>drover: sign-in failed</title><link rel="stylesheet" href="app.css"></head>
<body><main class="login"><h1>Sign-in failed</h1>
<p class="error" data-code="${escapeHtml(error.code)}">${escapeHtml(error.code)}: ${escapeHtml(error.message)}</p>
<p><a href="./">Back to the console</a></p></main></body></html>
`;
  return secureHeaders(reply).code(statusOf(error.code) ?? 500).header('content-type', 'text/html; charset=utf-8').header('cache-control', 'no-store').send(body);
}

/** Where the issuer sends the browser back: oidc.redirectUri, else this request's origin and path with /ui/login turned into /ui/callback. */
function redirectUriOf(request: FastifyRequest, oidc: OidcVerifier): string {
  if (oidc.config.redirectUri !== undefined) return oidc.config.redirectUri;
  const path = request.url.replace(/\?.*$/, '').replace(/\/ui\/login$/, '/ui/callback');
  return `${request.protocol}://${request.host}${path}`;
}

const CallbackQuerySchema = Type.Object({
  state: Type.Optional(Type.String({ maxLength: 512 })),
  code: Type.Optional(Type.String({ maxLength: 4096 })),
  error: Type.Optional(Type.String({ maxLength: 256 })),
  error_description: Type.Optional(Type.String({ maxLength: 1024 })),
  iss: Type.Optional(Type.String({ maxLength: 2048 })),
});

const notConfigured = (): ManagerError => new ManagerError('OIDC_NOT_CONFIGURED', "This manager has no OIDC issuer configured (manager.json's oidc): log in with an operator token.");

/**
 * The checks of the issuer's redirect back (decision 0044), in order: the state is this browser's
 * and in flight, the issuer is ours, it sent a code and not an error, the code exchanges for an ID
 * token that verifies (refusals audited) and carries the sign-in's nonce. The person's ID token and
 * when it expires (ms since the epoch); throws the ManagerError the failure page shows.
 */
async function completeSignIn(ctx: ManagerContext, query: Static<typeof CallbackQuerySchema>, bound: string | undefined): Promise<{ idToken: string; expiresAt: number }> {
  const oidc = ctx.oidc;
  if (oidc === undefined) throw notConfigured();
  // csrf: the state must be the one this browser's cookie holds, so a callback another site
  // forged (its own code, to sign the victim in as the attacker) is refused.
  const pending = query.state !== undefined && bound !== undefined && sameSecret(query.state, bound) ? oidcLoginsOf(oidc).take(query.state) : undefined;
  if (pending === undefined) {
    throw new ManagerError('OIDC_LOGIN_STATE_INVALID', 'This sign-in callback does not match a sign-in this browser started here (its state is missing, unknown, already used or older than 10 minutes). Start again from "Sign in with SSO".');
  }
  // mix-up: RFC 9207, an issuer that names itself must be ours.
  if (query.iss !== undefined && query.iss !== oidc.config.issuer) {
    throw new ManagerError('OIDC_LOGIN_REFUSED', `The sign-in came back from ${query.iss}, not from ${oidc.config.issuer}. Start again from "Sign in with SSO".`);
  }
  if (query.error !== undefined) {
    const detail = query.error_description === undefined ? '' : ` (${query.error_description})`;
    throw new ManagerError('OIDC_LOGIN_REFUSED', `The issuer refused the sign-in: ${query.error}${detail}. Sign in again and accept, or ask the issuer's administrator for access to the client ${oidc.config.audience}.`);
  }
  if (query.code === undefined) throw new ManagerError('BAD_REQUEST', 'The sign-in callback carries neither a code nor an error. Start again from "Sign in with SSO".');
  const idToken = await oidcLoginsOf(oidc).exchange(pending, query.code);
  // Verified like every bearer (signature, issuer, audience, expiry, groups; refusals audited), then the nonce.
  const person = await authenticateOperator(ctx, `Bearer ${idToken}`, { role: 'viewer' }, 'GET /ui/callback', { auditUse: false });
  const claims = decodeJwt(idToken);
  if (typeof claims.nonce !== 'string' || !sameSecret(claims.nonce, pending.nonce)) {
    await ctx.audit.append({ event: 'token.rejected', actor: person.name, tokenId: person.tokenId, outcome: 'denied', details: { route: 'GET /ui/callback', reason: 'the ID token does not carry the nonce of this sign-in' } });
    throw new ManagerError('OIDC_TOKEN_INVALID', 'The ID token does not carry the nonce this sign-in sent (a replayed or injected token). Start again from "Sign in with SSO".');
  }
  await auditTokenUse(ctx, person, 'GET /ui/callback');
  // exp is required by the verifier.
  return { idToken, expiresAt: (claims.exp ?? 0) * 1000 };
}

/**
 * The web console: its page and bundle at /ui, and its session (POST /ui/session logs in with an
 * operator token, GET tells the page its CSRF token, DELETE logs out).
 */
export function consoleRoutes(app: Parameters<FastifyPluginAsyncTypebox>[0], core: ManagerCore): void {
  const ctx = core.context;
  const sessions = sessionsOf(ctx);

  const serve = async (name: string, reply: FastifyReply): Promise<FastifyReply> => {
    const type = FILES[name] ?? 'application/octet-stream';
    const body = await readFile(new URL(name, ASSETS));
    return secureHeaders(reply).header('content-type', type).header('cache-control', 'no-cache').send(body);
  };
  // The page's assets are relative (app.js), so the page lives at /ui/: a location relative to
  // /ui, which keeps whatever prefix the manager is mounted under.
  app.get('/ui', (_request, reply) => secureHeaders(reply).redirect('ui/'));
  app.get('/ui/', (_request, reply) => serve('index.html', reply));
  app.get('/ui/:file', { schema: { params: Type.Object({ file: Type.Union(Object.keys(FILES).map((f) => Type.Literal(f))) }) } }, (request, reply) =>
    serve(request.params.file, reply),
  );

  app.post('/ui/session', { schema: { body: SessionBodySchema } }, async (request, reply) => {
    const operator = await authenticateOperator(ctx, `Bearer ${request.body.token}`, { role: 'viewer', deploy: true }, 'POST /ui/session');
    const session = sessions.open(request.body.token);
    const maxAge = Math.floor((session.expiresAt - Date.now()) / 1000);
    return secureHeaders(reply)
      .header('set-cookie', sessionCookie(request, session.id, maxAge))
      .header('cache-control', 'no-store')
      .send({ operator: operator.name, role: operator.role, csrfToken: session.csrfToken, expiresAt: new Date(session.expiresAt).toISOString() });
  });

  app.get('/ui/session', async (request, reply) => {
    const session = sessions.get(cookieOf(request, SESSION_COOKIE));
    if (session === undefined) throw new ManagerError('AUTH_REQUIRED', 'No console session: log in at /ui with an operator token.');
    const operator = await authenticateOperator(ctx, `Bearer ${session.token}`, { role: 'viewer', deploy: true }, 'GET /ui/session', { auditUse: false });
    return secureHeaders(reply).header('cache-control', 'no-store').send({ operator: operator.name, role: operator.role, csrfToken: session.csrfToken, expiresAt: new Date(session.expiresAt).toISOString() });
  });

  // Single sign-on (decision 0044): the authorization code flow with PKCE against manager.json's issuer.
  app.get('/ui/login', async (request, reply) => {
    if (ctx.oidc === undefined) return failurePage(reply, notConfigured());
    let begun;
    try {
      begun = await oidcLoginsOf(ctx.oidc).begin(redirectUriOf(request, ctx.oidc));
    } catch (error) {
      if (error instanceof ManagerError) return failurePage(reply, error);
      throw error;
    }
    const { state, location } = begun;
    return secureHeaders(reply)
      .header('set-cookie', loginCookie(request, state, oidcLoginLimits.pendingTtlMs / 1000))
      .header('cache-control', 'no-store')
      .redirect(location.href);
  });

  app.get('/ui/callback', { schema: { querystring: CallbackQuerySchema } }, async (request, reply) => {
    // The state cookie has done its work, whatever the outcome.
    reply.header('set-cookie', loginCookie(request, '', 0));
    let signedIn;
    try {
      signedIn = await completeSignIn(ctx, request.query, cookieOf(request, LOGIN_COOKIE));
    } catch (error) {
      if (error instanceof ManagerError) return failurePage(reply, error);
      throw error;
    }
    // The session ends when the ID token does: no refresh (decision 0044).
    const session = sessions.open(signedIn.idToken, signedIn.expiresAt);
    const maxAge = Math.max(0, Math.floor((session.expiresAt - Date.now()) / 1000));
    return secureHeaders(reply)
      .header('set-cookie', [loginCookie(request, '', 0), sessionCookie(request, session.id, maxAge)])
      .header('cache-control', 'no-store')
      .redirect('./');
  });

  app.delete('/ui/session', async (request, reply) => {
    const id = cookieOf(request, SESSION_COOKIE);
    const session = sessions.get(id);
    if (session !== undefined) {
      checkCsrf(request, session);
      sessions.close(session.id);
    }
    return secureHeaders(reply).header('set-cookie', sessionCookie(request, '', 0)).code(204).send();
  });
}
