import { sha256, toHex } from '@drover/protocol/internal';
import type { ManagerContext, Actor } from '../context.js';
import { ManagerError } from '../errors.js';
import { hashSecret, newSecret, secretId } from '../secrets.js';
import type { ImportAgentInput } from '../store/records.js';
import type { RolloutGroup } from '../rollouts/records.js';

// Bringing an existing fleet's agents into drover (issue 15, decision 0036): agents another manager
// (CIRISManager) created and gave service tokens. They have no daemon, so they become push-mode
// agents: the manager calls their shutdown route with the token they already hold. The CLI decrypts
// the other manager's registry on the operator's side; this re-encrypts each token under this
// manager's key and writes every agent, or none, with one audit record each naming the token by its id.

/** One agent to import, as `POST /v1/agents/import` carries it. */
export interface AgentImport {
  agentId: string;
  /** The agent's display name there; kept as the agent's host name here. */
  name: string;
  /** Where the manager reaches the agent's /v1/system routes, e.g. http://10.0.0.5:8080. */
  pushUrl: string;
  /** The agent's service token, in clear: this manager stores it Fernet-encrypted, never in clear. */
  serviceToken: string;
  group?: RolloutGroup | undefined;
  /** The version the other manager last saw the agent run. */
  agentVersion?: string | undefined;
}

export interface AgentImportRequest {
  /** Where the agents come from (only `ciris-registry` so far). */
  source: 'ciris-registry';
  /** SHA-256 of the registry file read: the audit record ties the import to the exact file. */
  registrySha256: string;
  agents: AgentImport[];
}

export interface ImportedAgent {
  agentId: string;
  serviceTokenId: string;
  pushUrl: string;
  group: RolloutGroup | null;
}

/** Refuses a push URL the engine could not call, or one that would carry credentials into logs. */
export function checkPushUrl(pushUrl: string): void {
  let url: URL | undefined;
  try {
    url = new URL(pushUrl);
  } catch {
    url = undefined;
  }
  if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.username !== '' || url.password !== '') {
    throw new ManagerError('PUSH_URL_INVALID', 'pushUrl must be an http(s) URL of the agent without credentials, e.g. http://10.0.0.5:8080.');
  }
}

// A stand-in machine id no host has: drover's machine ids are SHA-256 of the host's id, these of the agent's.
function importedMachineId(agentId: string): string {
  return toHex(sha256(`drover-import:${agentId}`));
}

/** Imports every agent of `request`, or none (AGENT_IMPORT_CONFLICT when one of them is here already). */
export async function importAgents(ctx: ManagerContext, request: AgentImportRequest, actor: Actor): Promise<ImportedAgent[]> {
  const seen = new Set<string>();
  for (const agent of request.agents) {
    if (seen.has(agent.agentId)) throw new ManagerError('BAD_REQUEST', `The agent id ${agent.agentId} appears twice in the import. Send each agent once.`);
    seen.add(agent.agentId);
    checkPushUrl(agent.pushUrl);
  }
  const inputs: ImportAgentInput[] = request.agents.map((agent) => ({
    id: agent.agentId,
    machineId: importedMachineId(agent.agentId),
    hostname: agent.name,
    platform: 'push',
    arch: 'unknown',
    agentVersion: agent.agentVersion ?? 'unknown',
    daemonVersion: 'none',
    // No daemon will ever present a credential for this agent: the hash of a secret nobody is given.
    credentialHash: hashSecret(newSecret()),
    serviceTokenCiphertext: ctx.fernet.encrypt(agent.serviceToken),
    pushUrl: agent.pushUrl,
    group: agent.group,
  }));
  const audit = request.agents.map((agent) =>
    ctx.audit.entry({
      event: 'agent.imported',
      actor: actor.name,
      tokenId: actor.tokenId,
      agentId: agent.agentId,
      outcome: 'success',
      details: {
        source: request.source,
        registrySha256: request.registrySha256,
        name: agent.name,
        pushUrl: agent.pushUrl,
        group: agent.group ?? null,
        agentVersion: agent.agentVersion ?? null,
        // The token by its id only (DESIGN.md "Errors"): the first 16 hex of its SHA-256.
        serviceTokenId: secretId(agent.serviceToken),
      },
    }),
  );
  const result = await ctx.store.importAgents(inputs, ctx.now(), audit);
  if (!result.ok) {
    await ctx.audit.append({
      event: 'agent.import_refused',
      actor: actor.name,
      tokenId: actor.tokenId,
      outcome: 'denied',
      details: { source: request.source, registrySha256: request.registrySha256, code: 'AGENT_IMPORT_CONFLICT', taken: result.taken.slice(0, 20), agents: request.agents.length },
    });
    throw new ManagerError(
      'AGENT_IMPORT_CONFLICT',
      `Nothing was imported: ${result.taken.length} agent(s) are here already (${result.taken.slice(0, 5).join(', ')}${result.taken.length > 5 ? ', ...' : ''}). Remove them from the registry file, or from this manager, then import again.`,
    );
  }
  await ctx.audit.flush();
  ctx.logger.info({ event: 'agent.imported', source: request.source, count: result.agents.length }, 'imported agents');
  return request.agents.map((agent) => ({ agentId: agent.agentId, serviceTokenId: secretId(agent.serviceToken), pushUrl: agent.pushUrl, group: agent.group ?? null }));
}
