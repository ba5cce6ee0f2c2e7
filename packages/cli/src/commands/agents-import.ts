import type { Command } from '../cli.js';
import { flag, requireString, stringList } from '../cli.js';
import { cirisRegistryKey, decryptServiceTokens, parseCirisRegistry } from '../ciris/registry.js';
import type { CirisRegistryAgent } from '../ciris/registry.js';
import { CliError } from '../errors.js';
import { readInput } from '../fs-atomic.js';
import { operatorClient, operatorOptions } from '../operator.js';
import { formatTable } from '../table.js';
import { tokenId } from '@drover/protocol';

// `drover agents import --ciris-registry FILE` (issue 15, decision 0036): the agents a CIRISManager
// runs, with their service tokens, become push-mode agents of a drover manager. The registry is
// decrypted here, on the operator's side, with CIRISManager's key; the manager gets the tokens over
// the operator API and stores them under its own key. Nothing is sent unless every token decrypts.

const DEFAULT_SERVERS = { main: 'http://127.0.0.1' };

function serverMap(entries: readonly string[]): Map<string, URL> {
  const servers = new Map<string, URL>(Object.entries(DEFAULT_SERVERS).map(([id, url]) => [id, new URL(url)]));
  for (const entry of entries) {
    const at = entry.indexOf('=');
    const id = at <= 0 ? '' : entry.slice(0, at);
    let url: URL | undefined;
    try {
      url = new URL(entry.slice(at + 1));
    } catch {
      url = undefined;
    }
    if (id === '' || url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.port !== '' || url.pathname !== '/') {
      throw new CliError('USAGE_ERROR', `--server takes SERVER_ID=URL without a port or path, e.g. scout=http://10.0.0.7; got "${entry}".`);
    }
    servers.set(id, url);
  }
  return servers;
}

function pushUrlOf(agent: CirisRegistryAgent, servers: Map<string, URL>): string {
  const base = servers.get(agent.serverId);
  if (base === undefined) {
    throw new CliError('CIRIS_SERVER_UNKNOWN', `Nothing was imported: agent "${agent.key}" runs on server "${agent.serverId}", which no --server names. Add --server ${agent.serverId}=http://<its address>.`);
  }
  const url = new URL(base.href);
  url.port = String(agent.port);
  return url.href.replace(/\/$/, '');
}

export const agentsImportCommand: Command = {
  usage: '--ciris-registry FILE --manager URL [--token-file FILE] [--server ID=URL]... [--dry-run]',
  description: [
    "Reads CIRISManager's agent registry (metadata.json) and imports each agent that has a service token as a push-mode agent: the manager calls",
    "http://<server>:<port>/v1/system/shutdown with the token the agent already holds. The tokens are decrypted here with CIRISManager's key:",
    'CIRIS_ENCRYPTION_KEY, else the key derived from MANAGER_JWT_SECRET and CIRIS_ENCRYPTION_SALT (at least 16 characters), as CIRISManager',
    'derives it; an invalid CIRIS_ENCRYPTION_KEY is refused, never replaced. Every token must decrypt and every agent must be new to the',
    'manager, or nothing is imported. The manager stores the tokens under its own key and audits each agent (agent.imported) with the',
    "token's id, never the token. Agents without a service token are listed as skipped. Agents on server main are reached at 127.0.0.1;",
    'name the others with --server.',
  ].join('\n'),
  options: {
    ...operatorOptions(),
    'ciris-registry': { type: 'string', arg: 'FILE', help: "CIRISManager's agent registry, e.g. /opt/ciris/agents/metadata.json." },
    server: { type: 'string', arg: 'ID=URL', multiple: true, help: 'Where the agents of a CIRISManager server are reached, e.g. scout=http://10.0.0.7 (default: main=http://127.0.0.1).' },
    'dry-run': { type: 'boolean', help: 'Decrypt and list what would be imported, without contacting the manager.' },
  },
  async run({ values, io }) {
    const file = requireString(values, 'ciris-registry');
    const servers = serverMap(stringList(values, 'server'));
    const registry = parseCirisRegistry(await readInput(file, 'Registry file'));
    const withToken = registry.agents.filter((agent) => agent.serviceTokenCiphertext !== undefined);
    const skipped = registry.agents.filter((agent) => agent.serviceTokenCiphertext === undefined).map((agent) => ({ agentId: agent.key, reason: 'no service token' }));
    // Every push URL first: an unknown server refuses the import before any key is looked at.
    const pushUrls = new Map(withToken.map((agent) => [agent.key, pushUrlOf(agent, servers)]));
    if (withToken.length === 0) throw new CliError('CIRIS_REGISTRY_INVALID', `The registry holds no agent with a service token (${registry.agents.length} agent(s) in all); there is nothing to import.`);
    const { fernet, source } = cirisRegistryKey(io.env);
    const tokens = decryptServiceTokens(withToken, fernet, source);
    const agents = withToken.map((agent) => ({
      agentId: agent.key,
      name: agent.name,
      pushUrl: pushUrls.get(agent.key) ?? '',
      serviceToken: tokens.get(agent.key) ?? '',
      ...(agent.group === undefined ? {} : { group: agent.group }),
      ...(agent.currentVersion === undefined ? {} : { agentVersion: agent.currentVersion }),
    }));
    let imported: { agentId: string; serviceTokenId: string; pushUrl: string; group: string | null }[];
    if (flag(values, 'dry-run')) {
      imported = agents.map((a) => ({ agentId: a.agentId, serviceTokenId: tokenId(a.serviceToken), pushUrl: a.pushUrl, group: a.group ?? null }));
    } else {
      const client = await operatorClient(values, io);
      const answer = (await client.json({ method: 'POST', path: '/v1/agents/import', json: { source: 'ciris-registry', registrySha256: registry.sha256, agents }, retry: false })) as { imported: typeof imported };
      imported = answer.imported;
    }
    const verb = flag(values, 'dry-run') ? 'WOULD IMPORT' : 'IMPORTED';
    const rows = imported.map((a) => [a.agentId, a.pushUrl, a.group ?? '-', a.serviceTokenId]);
    const lines = [...formatTable(['AGENT', 'PUSH URL', 'GROUP', 'SERVICE TOKEN ID'], rows), `${verb} ${imported.length} agent(s) from ${file} (key: ${source === 'derived' ? 'derived from MANAGER_JWT_SECRET' : source})`];
    for (const s of skipped) lines.push(`SKIPPED ${s.agentId}: ${s.reason}`);
    return { data: { imported, skipped, dryRun: flag(values, 'dry-run'), registrySha256: registry.sha256, keySource: source }, text: lines.join('\n') };
  },
};
