import { parseBearer, tokenId, verifyServiceToken } from '@drover/protocol';
import type { Actor, ManagerContext } from '../context.js';
import { ManagerError } from '../errors.js';

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
 * role may use the route. Each use, and each refusal, is audited under the token's id.
 */
export async function authenticateOperator(ctx: ManagerContext, authorization: string | undefined, allowed: readonly OperatorRole[], route: string): Promise<OperatorIdentity> {
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
  await ctx.audit.append({ event: 'token.used', actor, tokenId: id, outcome: 'success', details: { route, role } });
  return { name: actor, role, tokenId: id };
}
