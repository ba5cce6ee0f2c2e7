import { generateServiceToken, tokenId } from '@drover/protocol';
import type { EnrollRequest, EnrollResponse } from '@drover/protocol';
import type { ManagerContext } from '../context.js';
import { ManagerError } from '../errors.js';
import type { ManagerErrorCode } from '../errors.js';
import { presentedSha256 } from '../presented.js';
import { hashSecret, idOfHash, newId, newSecret, secretId } from '../secrets.js';
import type { EnrollRefusal } from '../store/records.js';

const refusals: Record<EnrollRefusal, { code: ManagerErrorCode; message: string }> = {
  token_unknown: { code: 'ENROLLMENT_TOKEN_INVALID', message: 'The enrollment token is not one this manager issued. Ask the operator for a token (`drover enroll-token create`).' },
  token_expired: { code: 'ENROLLMENT_TOKEN_EXPIRED', message: 'The enrollment token has expired. Ask the operator for a new one (`drover enroll-token create`).' },
  token_exhausted: { code: 'ENROLLMENT_TOKEN_EXHAUSTED', message: 'Every seat of the enrollment token is used. Ask the operator for a token with more seats.' },
  token_revoked: { code: 'ENROLLMENT_TOKEN_REVOKED', message: 'The enrollment token was revoked. Ask the operator for a new one.' },
  already_enrolled: {
    code: 'AGENT_ALREADY_ENROLLED',
    message: 'This machine is already enrolled and this manager does not allow re-enrollment. Use the existing credential, or ask the operator to remove the agent first.',
  },
};

/**
 * Enrolls a host (DESIGN.md "Enrollment"): spends a seat of the enrollment token and issues a
 * credential (stored hashed) and a service token (stored Fernet-encrypted), each returned once.
 *
 * The same machine enrolling again (same machine id) keeps its agent id and gets a new credential
 * and service token; the old credential stops working at once. See
 * docs/decisions/0006-manager-re-enrollment.md.
 */
export async function enroll(ctx: ManagerContext, request: EnrollRequest, headerMachineId: string | undefined): Promise<EnrollResponse> {
  const presentedTokenId = tokenId(request.enrollmentToken);
  const machineId = request.machineId.toLowerCase();
  // One machine id per call: a body claiming one machine from a host that says it is another is refused.
  if (headerMachineId !== undefined && headerMachineId.toLowerCase() !== machineId) {
    await ctx.audit.append({
      event: 'agent.machine_id_mismatch',
      actor: 'anonymous',
      tokenId: presentedTokenId,
      outcome: 'denied',
      // A refused request's values are the client's: the chain keeps their SHA-256 (decision 0022).
      details: { route: 'enroll', machineIdSha256: presentedSha256(machineId), headerMachineIdSha256: presentedSha256(headerMachineId) },
    });
    throw new ManagerError('MACHINE_ID_MISMATCH', 'The X-Machine-ID header and the machineId in the body differ. Send the same machine id in both.');
  }
  const credential = newSecret();
  const serviceToken = generateServiceToken();
  const now = ctx.now();
  const result = await ctx.store.enrollAgent({
    tokenHash: hashSecret(request.enrollmentToken),
    now,
    newAgentId: newId('agent'),
    machineId,
    hostname: request.hostname,
    platform: request.platform,
    arch: request.arch,
    agentVersion: request.agentVersion,
    daemonVersion: request.daemonVersion,
    inventory: request.inventory,
    credentialHash: hashSecret(credential),
    serviceTokenCiphertext: ctx.fernet.encrypt(serviceToken),
    allowReenrollment: ctx.settings.allowReenrollment,
  }, (enrolled) => {
    const { agent, token } = enrolled;
    return [
      ctx.audit.entry({
        event: enrolled.reenrolled ? 'agent.reenrolled' : 'agent.enrolled',
        actor: `agent:${agent.id}`,
        agentId: agent.id,
        tokenId: token.id,
        outcome: 'success',
        details: {
          machineId,
          hostname: agent.hostname,
          platform: agent.platform,
          arch: agent.arch,
          agentVersion: agent.agentVersion,
          daemonVersion: agent.daemonVersion,
          credentialId: secretId(credential),
          serviceTokenId: secretId(serviceToken),
          ...(enrolled.previousCredentialHash === undefined ? {} : { previousCredentialId: idOfHash(enrolled.previousCredentialHash) }),
          seats: token.seats,
          seatsUsed: token.used,
        },
      }),
    ];
  });
  if (!result.ok) {
    const refusal = refusals[result.reason];
    await ctx.audit.append({
      event: 'agent.enroll_refused',
      actor: 'anonymous',
      tokenId: result.token?.id ?? presentedTokenId,
      agentId: result.agentId,
      outcome: 'denied',
      details: {
        code: refusal.code,
        machineIdSha256: presentedSha256(machineId),
        hostnameSha256: presentedSha256(request.hostname),
        ...(result.token === undefined ? {} : { seats: result.token.seats, used: result.token.used }),
      },
    });
    ctx.logger.info({ event: 'agent.enroll_refused', code: refusal.code, tokenId: result.token?.id ?? presentedTokenId }, 'refused an enrollment');
    throw new ManagerError(refusal.code, refusal.message);
  }
  const { agent, token } = result;
  await ctx.audit.flush();
  ctx.logger.info({ event: result.reenrolled ? 'agent.reenrolled' : 'agent.enrolled', agentId: agent.id, tokenId: token.id }, result.reenrolled ? 'agent re-enrolled' : 'agent enrolled');
  return {
    agentId: agent.id,
    credential,
    serviceToken,
    managerKeys: ctx.managerPublicKeys.map((key) => ({ keyid: key.keyid, publicKey: key.toBase64() })),
    checkinIntervalSeconds: ctx.settings.checkinIntervalSeconds,
  };
}
