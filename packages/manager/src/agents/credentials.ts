import { parseBearer } from '@drover/protocol';
import type { ManagerContext } from '../context.js';
import { ManagerError } from '../errors.js';
import { presentedSha256 } from '../presented.js';
import { hashSecret, hashesEqual, idOfHash } from '../secrets.js';
import type { AgentIdentity } from '../store/records.js';

/**
 * Authenticates a daemon by its credential (`Authorization: Bearer <credential>`).
 *
 * The credential is hashed and looked up by its hash. Timing reveals nothing useful: an index
 * lookup leaks at most something about the SHA-256 of what was presented, which the caller cannot
 * steer towards a stored hash. The stored hash is then compared again in constant time.
 *
 * With `agentId` (the check-in URL's), the credential must be that agent's: another enrolled
 * agent's credential there is refused with CREDENTIAL_AGENT_MISMATCH and a security audit record
 * (a host, or someone holding its credential, is trying to act as another host).
 */
export async function authenticateAgent(ctx: ManagerContext, authorization: string | undefined, agentId?: string): Promise<AgentIdentity> {
  const credential = parseBearer(authorization, '');
  if (credential === undefined || credential === '') {
    throw new ManagerError('AUTH_REQUIRED', 'This route needs the agent credential issued at enrollment: send `Authorization: Bearer <credential>`.');
  }
  const hash = hashSecret(credential);
  const agent = await ctx.store.getAgentByCredentialHash(hash);
  if (agent === undefined || !hashesEqual(agent.credentialHash, hash)) {
    throw new ManagerError('CREDENTIAL_INVALID', 'The agent credential is not valid (never issued, or replaced by a re-enrollment). Enroll the host again with an enrollment token.');
  }
  if (agent.revokedAt !== undefined) {
    // A removed host (or someone holding its credential): refused, and each attempt is in the chain.
    await ctx.audit.append({
      event: 'agent.revoked_credential_used',
      actor: `agent:${agent.id}`,
      agentId: agent.id,
      outcome: 'denied',
      details: { credentialId: idOfHash(hash), revokedAt: agent.revokedAt.toISOString() },
    });
    ctx.logger.warn({ event: 'agent.revoked_credential_used', agentId: agent.id }, 'refused the credential of a removed host');
    throw new ManagerError('AGENT_REVOKED', `This host was removed by an operator at ${agent.revokedAt.toISOString()} (drover agents remove); its credential is no longer accepted. Enroll it again with a new enrollment token if it should come back.`);
  }
  if (agentId !== undefined && agent.id !== agentId) {
    // The URL's id is the client's (read before validation): kept as is only if it names an agent.
    const target = (await ctx.store.getAgent(agentId)) === undefined ? { targetAgentIdSha256: presentedSha256(agentId) } : { targetAgentId: agentId };
    await ctx.audit.append({
      event: 'agent.credential_misused',
      actor: `agent:${agent.id}`,
      agentId: agent.id,
      outcome: 'denied',
      details: { ...target, credentialId: idOfHash(hash), reason: "an agent's credential was presented on another agent's URL" },
    });
    ctx.logger.warn({ event: 'agent.credential_misused', agentId: agent.id, ...target }, "refused an agent's credential on another agent's URL");
    throw new ManagerError('CREDENTIAL_AGENT_MISMATCH', "This credential belongs to another agent than the one in the URL. Each host checks in with its own credential only.");
  }
  return agent;
}
