import { describe, expect, it } from 'vitest';
import { camelCaseKeys } from './json-case.js';

describe('camelCaseKeys', () => {
  it('renames the deploy API\'s snake_case fields at any depth, in arrays too', () => {
    const status = {
      deployment_id: 'dep_1',
      agents_total: 2,
      canary_phase: null,
      events: [{ event_type: 'phase_started', details: { agent_id: 'a', toVersion: '2.0.0' } }],
      agents: [{ agent_id: 'a', from_version: '1.0.0', error: { code: 'UPDATE_FAILED' } }],
    };
    expect(camelCaseKeys(status)).toEqual({
      deploymentId: 'dep_1',
      agentsTotal: 2,
      canaryPhase: null,
      events: [{ eventType: 'phase_started', details: { agentId: 'a', toVersion: '2.0.0' } }],
      agents: [{ agentId: 'a', fromVersion: '1.0.0', error: { code: 'UPDATE_FAILED' } }],
    });
  });

  it('keeps keys that are data: states, agent ids, phase names, and the operator\'s metadata', () => {
    const status = {
      counts: { health_check: 1, rolled_back: 2 },
      phases: [{ name: 'canary', counts: { health_check: 1 } }],
      agents_in_progress: { agt_x1: 'updating' },
      canary_assignments: { phase_1: ['agt_x1'] },
      notification: { commit_sha: 'abc123', metadata: { my_field: { inner_key: 1 } } },
    };
    expect(camelCaseKeys(status)).toEqual({
      counts: { health_check: 1, rolled_back: 2 },
      phases: [{ name: 'canary', counts: { health_check: 1 } }],
      agentsInProgress: { agt_x1: 'updating' },
      canaryAssignments: { phase_1: ['agt_x1'] },
      notification: { commitSha: 'abc123', metadata: { my_field: { inner_key: 1 } } },
    });
  });

  it('leaves values alone: strings with underscores, numbers, null', () => {
    expect(camelCaseKeys({ status: 'rolled_back', n: 1, none: null, list: ['a_b'] })).toEqual({ status: 'rolled_back', n: 1, none: null, list: ['a_b'] });
    expect(camelCaseKeys(null)).toBeNull();
  });
});
