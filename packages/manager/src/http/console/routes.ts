import { readFile } from 'node:fs/promises';
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ManagerCore } from '../../server/core.js';
import { ManagerError } from '../../errors.js';
import { authenticateOperator } from '../operator-auth.js';
import { checkCsrf, cookieOf, SESSION_COOKIE, sessionsOf } from './sessions.js';

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
