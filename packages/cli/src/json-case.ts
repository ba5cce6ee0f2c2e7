// The CLI prints every --json result with camelCase field names, whatever the manager's API
// answered: the deploy API keeps CIRIS's snake_case on the wire (`deployment_id`,
// `agents_total`), and `drover rollout ... --json` shows them as `deploymentId`, `agentsTotal`.

/**
 * Objects whose keys are data, not field names: targets per state (`health_check` is a state),
 * agents by id, agent ids by phase name, and the operator's own notification metadata. Their keys
 * are kept as they are; `metadata` is kept whole.
 */
const DATA_KEYED = new Set(['counts', 'agents_in_progress', 'canary_assignments']);
const KEPT_WHOLE = new Set(['metadata']);

function camelCase(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, letter: string) => letter.toUpperCase());
}

/** `value` with each object's field names in camelCase (`deployment_id` -> `deploymentId`). */
export function camelCaseKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(camelCaseKeys);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, field]) => {
      if (KEPT_WHOLE.has(key)) return [camelCase(key), field];
      if (DATA_KEYED.has(key) && field !== null && typeof field === 'object' && !Array.isArray(field)) {
        return [camelCase(key), Object.fromEntries(Object.entries(field as Record<string, unknown>).map(([dataKey, item]) => [dataKey, camelCaseKeys(item)]))];
      }
      return [camelCase(key), camelCaseKeys(field)];
    }),
  );
}
