import { parseBearer, tokenId, verifyServiceToken } from '@drover/protocol';
import type { FastifyRequest, onRequestAsyncHookHandler, preHandlerAsyncHookHandler } from 'fastify';
import type { Actor, ManagerContext } from '../context.js';
import { ManagerError } from '../errors.js';
import { personRoles } from '../oidc/oidc-config.js';
import type { PersonRole } from '../oidc/oidc-config.js';
import { looksLikeJwt } from '../oidc/oidc-verifier.js';
import { operatorAuthorization } from './console/sessions.js';

/**
 * Who an operator is: a person's role (`viewer` < `operator` < `admin`, each including the ones
 * below it; the static admin token is `admin`), or `deploy`, the CI token, which publishes and
 * deploys and nothing else.
 */
export type OperatorRole = PersonRole | 'deploy';

/** What a route needs: the lowest person's role that may use it, and whether the deploy token may too. */
export interface RouteAccess {
  role: PersonRole;
  /** The deploy token (CI, the CIRIS webhook) may use the route too. */
  deploy?: boolean;
}

/** The one place the role hierarchy is decided: viewer < operator < admin; deploy only where a route says so. */
export function permits(role: OperatorRole, access: RouteAccess): boolean {
  if (role === 'deploy') return access.deploy === true;
  return personRoles.indexOf(role) >= personRoles.indexOf(access.role);
}

function describeAccess(access: RouteAccess): string {
  const above = personRoles.slice(personRoles.indexOf(access.role) + 1);
  const roles = [access.role, ...above].join(', ');
  return access.deploy === true ? `${roles} or the deploy token` : roles;
}

export interface OperatorIdentity extends Actor {
  role: OperatorRole;
  tokenId: string;
}

function matches(presented: string, tokens: readonly string[]): boolean {
  // timing: every configured token is compared, in constant time, whichever matches.
  let found = false;
  for (const token of tokens) found = verifyServiceToken(presented, token) || found;
  return found;
}

/** The operator a token is, or the refusal it earned (not yet audited). */
async function identify(ctx: ManagerContext, presented: string, id: string): Promise<{ identity: OperatorIdentity; details: Record<string, string> }> {
  const isAdmin = matches(presented, ctx.adminTokens);
  const isDeploy = matches(presented, ctx.deployTokens);
  if (isAdmin) return { identity: { name: `operator:${id}`, role: 'admin', tokenId: id }, details: {} };
  if (isDeploy) return { identity: { name: `deploy:${id}`, role: 'deploy', tokenId: id }, details: {} };
  // A person's ID token: checked against the issuer's keys; the token itself is never logged, only its id.
  if (ctx.oidc !== undefined && looksLikeJwt(presented)) {
    const person = await ctx.oidc.verify(presented);
    return { identity: { name: `user:${person.subject}`, role: person.role, tokenId: id }, details: { ...(person.email === undefined ? {} : { email: person.email }) } };
  }
  throw new ManagerError(
    'AUTH_INVALID',
    `Token ${id} is not an admin or deploy token of this manager${ctx.oidc === undefined ? '' : ', nor an ID token from its OIDC issuer'}. Use a token from \`drover manager init\` (secrets/admin.token)${ctx.oidc === undefined ? '' : ' or log in with `drover login`'}.`,
  );
}

/**
 * Authenticates an operator (`Authorization: Bearer <admin or deploy token, or a person's ID
 * token>`) and checks that its role may use the route. Each refusal is audited under the token's
 * id, and so is each use unless `auditUse` is false (the route hooks audit it once the request has
 * passed validation).
 */
export async function authenticateOperator(
  ctx: ManagerContext,
  authorization: string | undefined,
  access: RouteAccess,
  route: string,
  options: { auditUse?: boolean } = {},
): Promise<OperatorIdentity> {
  const presented = parseBearer(authorization, '');
  if (presented === undefined || presented === '') {
    throw new ManagerError(
      'AUTH_REQUIRED',
      `This route needs an operator token: send \`Authorization: Bearer <admin token>\` (or the deploy token where it is allowed${ctx.oidc === undefined ? '' : ', or your ID token: `drover login`'}).`,
    );
  }
  const id = tokenId(presented);
  let identified;
  try {
    identified = await identify(ctx, presented, id);
  } catch (error) {
    // An issuer the manager cannot reach says nothing about the token: not audited as a refusal.
    if (error instanceof ManagerError && error.code !== 'OIDC_UNAVAILABLE') {
      const reason = error.code === 'AUTH_INVALID' ? 'not an admin or deploy token of this manager' : error.code;
      const actor = error.code === 'ROLE_NONE' && error.details?.['subject'] !== undefined ? `user:${error.details['subject']}` : 'anonymous';
      await ctx.audit.append({ event: 'token.rejected', actor, tokenId: id, outcome: 'denied', details: { route, reason } });
    }
    throw error;
  }
  const { identity, details } = identified;
  if (!permits(identity.role, access)) {
    await ctx.audit.append({ event: 'token.rejected', actor: identity.name, tokenId: id, outcome: 'denied', details: { route, role: identity.role, reason: `the ${identity.role} role may not use this route`, ...details } });
    throw new ManagerError('TOKEN_SCOPE_INSUFFICIENT', `Token ${id} (${identity.name}) has the ${identity.role} role; this route needs ${describeAccess(access)}.`);
  }
  if (options.auditUse !== false) await auditTokenUse(ctx, identity, route);
  return identity;
}

/** The audit record of an operator token's use on a route. */
export async function auditTokenUse(ctx: ManagerContext, operator: OperatorIdentity, route: string): Promise<void> {
  await ctx.audit.append({ event: 'token.used', actor: operator.name, tokenId: operator.tokenId, outcome: 'success', details: { route, role: operator.role } });
}

/** The hooks that guard operator routes, and the operator each request authenticated as. */
export interface OperatorAccess {
  /**
   * Route options: authenticate on `onRequest` (before the body is read), audit the use on
   * `preHandler`. `bodyNeeds`, when given, names a higher requirement that the parsed body calls
   * for (checked on `preHandler`, before the use is audited).
   */
  allow: (access: RouteAccess, bodyNeeds?: (request: FastifyRequest) => RouteAccess | undefined) => { onRequest: onRequestAsyncHookHandler; preHandler: preHandlerAsyncHookHandler };
  /** The operator a request that reached its handler authenticated as. */
  operatorOf: (request: FastifyRequest) => OperatorIdentity;
}

/**
 * Guards operator routes. The token is checked before the body is even read (an unauthenticated
 * peer costs no parsing), and a refused token is audited there; its use is audited on
 * `preHandler`, after validation, so a request refused as malformed leaves the audit log as it was
 * (and nothing in the store changed either: no handler ran).
 */
export function operatorAccess(ctx: ManagerContext): OperatorAccess {
  const operators = new WeakMap<FastifyRequest, OperatorIdentity>();
  const routeOf = (request: FastifyRequest): string => `${request.method} ${request.routeOptions.url ?? ''}`;
  const operatorOf = (request: FastifyRequest): OperatorIdentity => {
    const operator = operators.get(request);
    if (operator === undefined) throw new Error('an operator route reached its handler unauthenticated');
    return operator;
  };
  const allow: OperatorAccess['allow'] = (access, bodyNeeds) => ({
    onRequest: async (request) => {
      operators.set(request, await authenticateOperator(ctx, operatorAuthorization(ctx, request), access, routeOf(request), { auditUse: false }));
    },
    preHandler: async (request) => {
      const operator = operatorOf(request);
      const needed = bodyNeeds?.(request);
      if (needed !== undefined && !permits(operator.role, needed)) {
        await ctx.audit.append({ event: 'token.rejected', actor: operator.name, tokenId: operator.tokenId, outcome: 'denied', details: { route: routeOf(request), role: operator.role, reason: `the ${operator.role} role may not make this request` } });
        throw new ManagerError('TOKEN_SCOPE_INSUFFICIENT', `Token ${operator.tokenId} (${operator.name}) has the ${operator.role} role; this request needs ${describeAccess(needed)}.`);
      }
      await auditTokenUse(ctx, operator, routeOf(request));
    },
  });
  return { allow, operatorOf };
}
