import type { Command } from '../cli.js';
import { optionalString } from '../cli.js';
import { CliError } from '../errors.js';
import { operatorClient, operatorOptions } from '../operator.js';

interface AgentRow {
  agentId: string;
  hostname: string;
  platform: string;
  agentVersion: string;
  daemonVersion: string;
  lastCheckinAt: string | null;
  health: { status?: string; busy?: boolean } | null;
}

interface AgentPage {
  agents: AgentRow[];
  next: string | null;
  total: number;
}

const PAGE = 500; // agents per request

export const agentsListCommand: Command = {
  usage: '--manager URL [--token-file FILE] [--limit N]',
  options: {
    ...operatorOptions(),
    limit: { type: 'string', arg: 'N', help: 'List at most N agents (default: all).' },
  },
  async run({ values, io }) {
    const limitText = optionalString(values, 'limit');
    const limit = limitText === undefined ? Number.POSITIVE_INFINITY : Number(limitText);
    if (limitText !== undefined && (!Number.isInteger(limit) || limit < 1)) throw new CliError('USAGE_ERROR', `--limit takes a whole number of at least 1; got "${limitText}".`);
    const client = await operatorClient(values, io);
    const agents: AgentRow[] = [];
    let after: string | null = null;
    let total = 0;
    do {
      const query = new URLSearchParams({ limit: String(Math.min(PAGE, limit - agents.length)), ...(after === null ? {} : { after }) });
      const page = (await client.json({ method: 'GET', path: `/v1/agents?${query.toString()}` })) as AgentPage;
      agents.push(...page.agents);
      total = page.total;
      after = page.next;
    } while (after !== null && agents.length < limit);
    const rows = agents.map((a) => [a.agentId, a.hostname, a.platform, a.agentVersion, a.daemonVersion, a.lastCheckinAt ?? 'never', a.health?.status ?? '-']);
    const header = ['AGENT', 'HOST', 'PLATFORM', 'AGENT VERSION', 'DAEMON VERSION', 'LAST CHECK-IN', 'HEALTH'];
    const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => (row[i] ?? '').length)));
    const line = (cells: string[]): string => cells.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
    return {
      data: { agents, total },
      text: [line(header), ...rows.map(line), `${agents.length} of ${total} agent(s)`].join('\n'),
    };
  },
};
