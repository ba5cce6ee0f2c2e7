import type { AgentFilter } from './records.js';

// The WHERE clause of a filtered fleet listing (Store.listAgents, Store.countAgents), for both
// stores: fixed SQL text with one placeholder per value, never a value in the text. The stores
// differ only in their placeholders and in how they read the status out of health_json.

/** What differs between the stores: the n-th placeholder (from 1), and the SQL of health_json's status. */
export interface FilterDialect {
  placeholder: (n: number) => string;
  healthStatus: string;
}

/** The text columns `q` searches. */
const searchedColumns = ['id', 'machine_id', 'hostname', 'agent_version', 'daemon_version'] as const;

/** `q` as a LIKE pattern matching it anywhere, lowercased, its own `\`, `%` and `_` taken literally (ESCAPE '\'). */
export function containsPattern(q: string): string {
  return `%${q.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/**
 * The conditions of `filter` joined by AND (`TRUE` when it has none) and their values in order.
 * `first` is the number of the first placeholder, for queries with values before the clause.
 */
export function agentFilterWhere(filter: AgentFilter, dialect: FilterDialect, first = 1): { sql: string; params: string[] } {
  const params: string[] = [];
  const bind = (value: string): string => {
    params.push(value);
    return dialect.placeholder(first + params.length - 1);
  };
  const conditions: string[] = [];
  if (filter.q !== undefined && filter.q !== '') {
    const pattern = containsPattern(filter.q);
    conditions.push(`(${searchedColumns.map((column) => `lower(${column}) LIKE ${bind(pattern)} ESCAPE '\\'`).join(' OR ')})`);
  }
  if (filter.group !== undefined) conditions.push(`rollout_group = ${bind(filter.group)}`);
  if (filter.version !== undefined) conditions.push(`agent_version = ${bind(filter.version)}`);
  if (filter.health !== undefined) conditions.push(`${dialect.healthStatus} = ${bind(filter.health)}`);
  return { sql: conditions.length === 0 ? 'TRUE' : conditions.join(' AND '), params };
}
