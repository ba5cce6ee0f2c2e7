import { agentHealthStatuses } from '@drover/protocol';
import type { Command, OptionValues } from '../cli.js';
import { optionalString } from '../cli.js';
import { CliError } from '../errors.js';
import { operatorClient, operatorOptions } from '../operator.js';
import { formatTable } from '../table.js';

interface AgentRow {
  agentId: string;
  hostname: string;
  platform: string;
  agentVersion: string;
  daemonVersion: string;
  lastCheckinAt: string | null;
  health: { status?: string; busy?: boolean } | null;
  revokedAt?: string | null;
}

interface AgentPage {
  agents: AgentRow[];
  next: string | null;
  total: number;
}

const PAGE = 500; // agents per request
const GROUPS = ['explorer', 'early_adopter', 'general'];

/** GET /v1/agents' filters from `drover agents list`'s flags (--search is the query's `q`); a group or health status the manager does not know is a usage error here. */
export function agentFilterQuery(values: OptionValues): URLSearchParams {
  const query = new URLSearchParams();
  for (const [flag, name] of [['search', 'q'], ['group', 'group'], ['version', 'version'], ['health', 'health']] as const) {
    const value = optionalString(values, flag);
    if (value !== undefined) query.set(name, value);
  }
  const group = query.get('group');
  if (group !== null && !GROUPS.includes(group)) throw new CliError('USAGE_ERROR', `--group is ${GROUPS.join(', ')}; got "${group}".`);
  const health = query.get('health');
  if (health !== null && !(agentHealthStatuses as readonly string[]).includes(health)) throw new CliError('USAGE_ERROR', `--health is ${agentHealthStatuses.join(', ')}; got "${health}".`);
  return query;
}

export const agentsListCommand: Command = {
  usage: '--manager URL [--token-file FILE] [--limit N] [--search TEXT] [--group G] [--version V] [--health H]',
  description: 'Lists the hosts of the fleet in agent id order. The filters combine; the count line says how many of the hosts they take were listed.',
  options: {
    ...operatorOptions(),
    limit: { type: 'string', arg: 'N', help: 'List at most N agents (default: all).' },
    search: { type: 'string', arg: 'TEXT', help: 'Only agents whose id, machine id, hostname, agent or daemon version contains TEXT (any case).' },
    group: { type: 'string', arg: 'G', help: `Only this canary group: ${GROUPS.join(', ')}.` },
    version: { type: 'string', arg: 'V', help: 'Only agents running exactly this agent version.' },
    health: { type: 'string', arg: 'H', help: `Only agents whose last health report says ${agentHealthStatuses.join(', ')}.` },
  },
  async run({ values, io }) {
    const limitText = optionalString(values, 'limit');
    const limit = limitText === undefined ? Number.POSITIVE_INFINITY : Number(limitText);
    if (limitText !== undefined && (!Number.isInteger(limit) || limit < 1)) throw new CliError('USAGE_ERROR', `--limit takes a whole number of at least 1; got "${limitText}".`);
    const filter = agentFilterQuery(values);
    const client = await operatorClient(values, io);
    const agents: AgentRow[] = [];
    let after: string | null = null;
    let total = 0;
    do {
      const query = new URLSearchParams(filter);
      query.set('limit', String(Math.min(PAGE, limit - agents.length)));
      if (after !== null) query.set('after', after);
      const page = (await client.json({ method: 'GET', path: `/v1/agents?${query.toString()}` })) as AgentPage;
      agents.push(...page.agents);
      total = page.total;
      after = page.next;
    } while (after !== null && agents.length < limit);
    const rows = agents.map((a) => [a.agentId, a.hostname, a.platform, a.agentVersion, a.daemonVersion, a.lastCheckinAt ?? 'never', typeof a.revokedAt === 'string' ? 'removed' : (a.health?.status ?? '-')]);
    const header = ['AGENT', 'HOST', 'PLATFORM', 'AGENT VERSION', 'DAEMON VERSION', 'LAST CHECK-IN', 'HEALTH'];
    return {
      data: { agents, total },
      text: [...formatTable(header, rows), `${agents.length} of ${total} ${filter.size === 0 ? '' : 'matching '}agent(s)`].join('\n'),
    };
  },
};

export const agentsRemoveCommand: Command = {
  usage: 'AGENT_ID --manager URL [--token-file FILE]',
  description:
    "Removes a host from the fleet: from now on the manager refuses its credential (AGENT_REVOKED, each attempt audited), so its check-ins, results and downloads; it is in no new rollout, and an open rollout skips it. The host's record and history stay. To bring the host back, enroll it again with a new enrollment token. Removing a removed host changes nothing.",
  options: operatorOptions(),
  arguments: ['<AGENT_ID>'],
  async run({ values, positionals, io }) {
    const [agentId = ''] = positionals;
    const client = await operatorClient(values, io);
    const answer = (await client.json({ method: 'DELETE', path: `/v1/agents/${encodeURIComponent(agentId)}` })) as { agent: AgentRow & { revokedAt: string } };
    return { data: answer.agent, text: `REMOVED ${answer.agent.agentId} (${answer.agent.hostname}) at ${answer.agent.revokedAt}: its credential is refused from now on` };
  },
};

export const agentsSetGroupCommand: Command = {
  usage: 'AGENT_ID GROUP --manager URL [--token-file FILE]',
  options: operatorOptions(),
  arguments: ['<AGENT_ID>', '<GROUP>'],
  async run({ values, positionals, io }) {
    const [agentId = '', group = ''] = positionals;
    // "none" takes the agent out of every group: it then falls in the percentage phases by its id.
    if (![...GROUPS, 'none'].includes(group)) throw new CliError('USAGE_ERROR', `GROUP is ${GROUPS.join(', ')} or none; got "${group}".`);
    const client = await operatorClient(values, io);
    const answer = (await client.json({ method: 'PUT', path: `/v1/agents/${encodeURIComponent(agentId)}/rollout`, json: { group: group === 'none' ? null : group } })) as { agentId: string; group: string | null };
    return { data: answer, text: `${answer.agentId}: canary group ${answer.group ?? 'none'}` };
  },
};
