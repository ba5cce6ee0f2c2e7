import { describe, expect, it } from 'vitest';
import { expectError } from '../../../../test/helpers/expect-error.js';
import { CliError } from '../errors.js';
import { agentFilterQuery } from './agents.js';

describe('drover agents list filters', () => {
  it('passes --search, --group, --version and --health to GET /v1/agents as q, group, version and health', () => {
    expect(agentFilterQuery({}).toString()).toBe('');
    const query = agentFilterQuery({ search: 'web 01%', group: 'explorer', version: '1.2.0', health: 'degraded', limit: '5' });
    expect([...query]).toEqual([['q', 'web 01%'], ['group', 'explorer'], ['version', '1.2.0'], ['health', 'degraded']]);
  });

  it('refuses a group or health status the manager does not know, naming the ones it does', () => {
    expect(() => agentFilterQuery({ group: 'canary' })).toThrow(/--group is explorer, early_adopter, general; got "canary"/);
    expect(() => agentFilterQuery({ health: 'sick' })).toThrow(/--health is healthy, degraded, starting; got "sick"/);
    expectError(() => agentFilterQuery({ health: 'sick' }), CliError, 'USAGE_ERROR');
  });
});
