import { parseBearer } from '@drover/protocol';
import type { CredentialResponse } from '@drover/protocol';
import type { ManagerContext } from '../context.js';
import { ManagerError } from '../errors.js';
import { failpoint } from '../failpoints.js';
import { presentedSha256 } from '../presented.js';
import { hashSecret, hashesEqual, idOfHash, newSecret, secretId } from '../secrets.js';
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
 *
 * A rotated credential (decision 0032) is accepted beside the current one until its first use
 * from the enrolled machine (`machineId`, the X-Machine-ID header), which makes it the credential:
 * from then on the old one is refused.
 */
export async function authenticateAgent(ctx: ManagerContext, authorization: string | undefined, agentId?: string, machineId?: string): Promise<AgentIdentity> {
  const credential = parseBearer(authorization, '');
  if (credential === undefined || credential === '') {
    throw new ManagerError('AUTH_REQUIRED', 'This route needs the agent credential issued at enrollment: send `Authorization: Bearer <credential>`.');
  }
  const hash = hashSecret(credential);
  const found = await ctx.store.getAgentByCredentialHash(hash);
  if (found === undefined || !hashesEqual(found.credentialHash, hash)) throw credentialInvalid();
  // Promoted only on a request that passes every check: its agent's URL, from its machine.
  const promotable = found.pending && found.revokedAt === undefined && (agentId === undefined || found.id === agentId) && machineId?.toLowerCase() === found.machineId;
  const agent = promotable ? await promote(ctx, found) : found;
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

function credentialInvalid(): ManagerError {
  return new ManagerError(
    'CREDENTIAL_INVALID',
    'The agent credential is not valid (never issued, replaced by a re-enrollment, or rotated away). Enroll the host again with an enrollment token.',
  );
}

/**
 * The first use of a rotated credential: it becomes the agent's credential and the old one stops
 * working, in one transaction with its audit record. Two first uses at once: one promotes, the
 * other finds the credential already current.
 */
async function promote(ctx: ManagerContext, agent: AgentIdentity): Promise<AgentIdentity> {
  const audit = ctx.audit.entry({
    event: 'agent.credential_rotated',
    actor: `agent:${agent.id}`,
    agentId: agent.id,
    outcome: 'success',
    details: { credentialId: idOfHash(agent.credentialHash) },
  });
  const promoted = await ctx.store.promoteCredential(agent.id, agent.credentialHash, ctx.now(), [audit]);
  if (promoted) {
    await ctx.audit.flush();
    ctx.logger.info({ event: 'agent.credential_rotated', agentId: agent.id, credentialId: idOfHash(agent.credentialHash) }, 'A host used its rotated credential; the previous one is refused from now on');
    failpoint('credential:promoted');
  }
  // As the store has it now, not as it was read: promoted here or by a request beside this one, or
  // not at all (the host was removed or enrolled again meanwhile).
  const now = await ctx.store.getAgentByCredentialHash(agent.credentialHash);
  if (now === undefined || now.pending || !hashesEqual(now.credentialHash, agent.credentialHash)) throw credentialInvalid();
  return now;
}

/**
 * Refuses a request whose X-Machine-ID is not the machine the credential was issued to (a cloned
 * credential), audited as `agent.machine_id_mismatch` with the SHA-256 of what was presented.
 */
export async function requireEnrolledMachine(ctx: ManagerContext, agent: AgentIdentity, presented: string, what: string): Promise<void> {
  if (presented.toLowerCase() === agent.machineId) return;
  await ctx.audit.append({
    event: 'agent.machine_id_mismatch',
    actor: `agent:${agent.id}`,
    agentId: agent.id,
    outcome: 'denied',
    // What the client sent is kept as its SHA-256: the header is the client's to fill (decision 0022).
    details: { enrolledMachineId: agent.machineId, presentedMachineIdSha256: presentedSha256(presented), reason: "the agent's credential was presented from another machine" },
  });
  ctx.logger.warn({ event: 'agent.machine_id_mismatch', agentId: agent.id }, `refused ${what} from another machine`);
  throw new ManagerError('MACHINE_ID_MISMATCH', 'This credential was issued to another machine. If the host was rebuilt, enroll it again with an enrollment token.');
}

/**
 * Credential rotation (decision 0032): a new credential for an authenticated host, stored as
 * pending beside the one it presented, which keeps working until the new one is first used. The
 * new one is in this answer only; a lost answer costs nothing (the next rotation replaces it).
 */
export async function issueCredential(ctx: ManagerContext, agent: AgentIdentity, machineId: string): Promise<CredentialResponse> {
  await requireEnrolledMachine(ctx, agent, machineId, 'a credential rotation');
  const credential = newSecret();
  const issuedAt = ctx.now();
  const audit = ctx.audit.entry({
    event: 'agent.credential_issued',
    actor: `agent:${agent.id}`,
    agentId: agent.id,
    outcome: 'success',
    details: { credentialId: secretId(credential), replacesCredentialId: idOfHash(agent.credentialHash) },
  });
  // False: the presented credential stopped being the agent's meanwhile (re-enrolled, removed, or
  // another request promoted a pending one).
  if (!(await ctx.store.setPendingCredential(agent.id, agent.credentialHash, hashSecret(credential), [audit]))) throw credentialInvalid();
  await ctx.audit.flush();
  failpoint('credential:issued');
  ctx.logger.info({ event: 'agent.credential_issued', agentId: agent.id, credentialId: secretId(credential) }, 'Issued a rotated credential; the current one works until it is used');
  return { credential, issuedAt: issuedAt.toISOString() };
}
