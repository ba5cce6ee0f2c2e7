import { parseBearer, tokenId, verifyServiceToken } from '@drover/protocol';
import type { FastifyRequest, onRequestAsyncHookHandler, preHandlerAsyncHookHandler } from 'fastify';
import type { Actor, ManagerContext } from '../context.js';
import { ManagerError } from '../errors.js';
import { operatorAuthorization } from './console/sessions.js';

/** What an operator token allows: `admin` everything, `deploy` publishing and deploying (CI). */
export type OperatorRole = 'admin' | 'deploy';

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

/**
 * Authenticates an operator (`Authorization: Bearer <admin or deploy token>`) and checks that its
 * role may use the route. Each refusal is audited under the token's id, and so is each use unless
 * `auditUse` is false (the route hooks audit it once the request has passed validation).
 */
export async function authenticateOperator(
  ctx: ManagerContext,
  authorization: string | undefined,
  allowed: readonly OperatorRole[],
  route: string,
  options: { auditUse?: boolean } = {},
): Promise<OperatorIdentity> {
  const presented = parseBearer(authorization, '');
  if (presented === undefined || presented === '') {
    throw new ManagerError('AUTH_REQUIRED', 'This route needs an operator token: send `Authorization: Bearer <admin token>` (or the deploy token where it is allowed).');
  }
  const id = tokenId(presented);
  const isAdmin = matches(presented, ctx.adminTokens);
  const isDeploy = matches(presented, ctx.deployTokens);
  const role: OperatorRole | undefined = isAdmin ? 'admin' : isDeploy ? 'deploy' : undefined;
  if (role === undefined) {
    await ctx.audit.append({ event: 'token.rejected', actor: 'anonymous', tokenId: id, outcome: 'denied', details: { route, reason: 'not an admin or deploy token of this manager' } });
    throw new ManagerError('AUTH_INVALID', `Token ${id} is not an admin or deploy token of this manager. Use a token from \`drover manager init\` (secrets/admin.token).`);
  }
  const actor = `${role === 'admin' ? 'operator' : 'deploy'}:${id}`;
  if (!allowed.includes(role)) {
    await ctx.audit.append({ event: 'token.rejected', actor, tokenId: id, outcome: 'denied', details: { route, role, reason: `the ${role} token may not use this route` } });
    throw new ManagerError('TOKEN_SCOPE_INSUFFICIENT', `Token ${id} is a ${role} token; this route needs ${allowed.join(' or ')}.`);
  }
  const identity: OperatorIdentity = { name: actor, role, tokenId: id };
  if (options.auditUse !== false) await auditTokenUse(ctx, identity, route);
  return identity;
}

/** The audit record of an operator token's use on a route. */
export async function auditTokenUse(ctx: ManagerContext, operator: OperatorIdentity, route: string): Promise<void> {
  await ctx.audit.append({ event: 'token.used', actor: operator.name, tokenId: operator.tokenId, outcome: 'success', details: { route, role: operator.role } });
}

/** The hooks that guard operator routes, and the operator each request authenticated as. */
export interface OperatorAccess {
  /** Route options: authenticate on `onRequest` (before the body is read), audit the use on `preHandler`. */
  allow: (roles: readonly OperatorRole[]) => { onRequest: onRequestAsyncHookHandler; preHandler: preHandlerAsyncHookHandler };
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
  const allow = (roles: readonly OperatorRole[]): ReturnType<OperatorAccess['allow']> => ({
    onRequest: async (request) => {
      operators.set(request, await authenticateOperator(ctx, operatorAuthorization(ctx, request), roles, routeOf(request), { auditUse: false }));
    },
    preHandler: async (request) => {
      await auditTokenUse(ctx, operatorOf(request), routeOf(request));
    },
  });
  return { allow, operatorOf };
}
