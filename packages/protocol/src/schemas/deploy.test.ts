import { expect, it } from 'vitest';
import { at, changelog, deploymentId, describeWireFamily, envelope, long, refuse } from '../../test/wire-examples.js';
import type { Examples } from '../../test/wire-examples.js';
import * as deploy from './deploy.js';
import { UpdateNotificationSchema } from './deploy.js';
import type { UpdateNotification } from './deploy.js';

const updateNotification: UpdateNotification = {
  agent_image: 'ghcr.io/cirisai/ciris-agent:latest',
  strategy: 'canary',
  source: 'github-actions',
  commit_sha: 'a1b2c3d4e5f6a7b8c9d0a1b2c3d4e5f6a7b8c9d0',
  changelog,
  version: '1.4.2',
};
const deploymentTarget = {
  agent_id: 'agent-7f3a',
  state: 'deferred',
  phase: 'explorers',
  from_version: '1.2.2',
  to_version: '1.2.3',
  attempts: 2,
  updated_at: at,
  deferred_until: '2026-11-24T12:05:00.000Z',
  message: 'The agent is busy with db-migration.',
  error: null,
};
const deploymentEvent = { timestamp: at, event_type: 'agent_deferred', message: 'agent-7f3a is busy: deferred', details: { busy_with: ['db-migration'] } };
const deploymentStatus = {
  deployment_id: deploymentId,
  notification: updateNotification,
  agents_total: 12,
  agents_updated: 3,
  agents_deferred: 1,
  agents_failed: 0,
  canary_phase: 'explorers',
  started_at: at,
  completed_at: null,
  status: 'in_progress',
  message: 'Canary phase explorers: 3 of 4 agents updated',
  events: [deploymentEvent],
  strategy: 'canary',
  updated_at: at,
  agents_pending_restart: [],
  agents_in_progress: { 'agent-7f3a': 'deferred' },
  canary_assignments: { explorers: ['agent-7f3a'], early_adopters: [], general: [] },
  artifact: 'agent',
  version: '1.2.3',
  agents: [deploymentTarget],
};
const changelogResponse = {
  artifact: 'agent',
  version: '1.2.3',
  commit_sha: 'a1b2c3d',
  released_at: at,
  changelog,
  latest: {
    version: '1.2.3',
    date: '2026-11-24',
    changes: [
      { type: 'fix', description: 'memory leak in telemetry service' },
      { type: 'feat', description: 'add new monitoring endpoint' },
    ],
  },
  summary: '3 changes: 1 fix, 1 feature, 1 test',
};

const examples: Record<string, Examples> = {
  UpdateNotification: {
    valid: [
      // What CIRISAgent's deploy job sends.
      updateNotification,
      // What a pydantic client sends with every field set, None included.
      {
        agent_image: 'ghcr.io/cirisai/ciris-agent:1.4.2',
        gui_image: null,
        nginx_image: null,
        message: 'Update available',
        strategy: 'immediate',
        metadata: { single_agent_deployment: true, target_agent: 'datum' },
        source: null,
        commit_sha: null,
        version: null,
        changelog: null,
        risk_level: null,
      },
      // A drover release pipeline.
      { artifact: 'agent', version: '1.2.3', release: envelope, risk_level: 'low', supersede: true, source: 'drover-cli' },
      // What CIRISManager's model (models.py UpdateNotification) also accepts: any strategy, risk
      // level and commit string, fields it does not name (docs/ciris-compat.md N1-N4).
      { ...updateNotification, strategy: 'rolling', risk_level: 'critical', commit_sha: 'main', staged_by: 'someone', dry_run: true },
      { agent_image: 'ghcr.io/cirisai/ciris-agent:latest' },
    ],
    invalid: [
      refuse('a strategy that is not a string', updateNotification, '/strategy', 1),
      refuse('a strategy too long', updateNotification, '/strategy', long(65)),
      refuse('a risk level that is not a string', updateNotification, '/risk_level', false),
      refuse('a changelog too long', updateNotification, '/changelog', long(65537)),
      refuse('a commit SHA too long', updateNotification, '/commit_sha', long(129)),
      refuse('too much metadata', updateNotification, '/metadata', Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, i]))),
      refuse('supersede as a string', updateNotification, '/supersede', 'yes'),
    ],
  },
  UpdateNotifyResponse: {
    valid: [
      { deployment_id: deploymentId, status: 'in_progress', message: 'Canary deployment started', agents_affected: 12 },
      { deployment_id: deploymentId, status: 'staged', message: 'Agent Update staged for human review', agents_affected: 12, deployment_type: 'agent_update' },
    ],
    invalid: [
      refuse('a negative count', { deployment_id: deploymentId, status: 'completed', message: '', agents_affected: 0 }, '/agents_affected', -1),
      refuse('an unknown status', { deployment_id: deploymentId, status: 'completed', message: '', agents_affected: 0 }, '/status', 'done'),
    ],
  },
  DeploymentEvent: {
    valid: [deploymentEvent, { timestamp: at, event_type: 'completed', message: 'done', details: null }],
    invalid: [refuse('an empty event type', deploymentEvent, '/event_type', '')],
  },
  DeploymentTarget: {
    valid: [deploymentTarget, { ...deploymentTarget, state: 'pending', phase: null, from_version: null, attempts: 0 }],
    invalid: [
      refuse('an unknown state', deploymentTarget, '/state', 'waiting'),
      refuse('a fractional attempt count', deploymentTarget, '/attempts', 1.5),
    ],
  },
  DeploymentStatus: {
    valid: [deploymentStatus, { ...deploymentStatus, notification: null, canary_phase: null, strategy: null, agents: [], events: [] }],
    invalid: [
      refuse('an unknown status', deploymentStatus, '/status', 'running'),
      refuse('an unknown agent state', deploymentStatus, '/agents/0/state', 'x'),
      refuse('an unknown strategy', deploymentStatus, '/strategy', 'rolling'),
    ],
  },
  DeploymentStatusResponse: {
    valid: [deploymentStatus, null],
    invalid: [
      { why: 'a string', value: 'none', path: '/' },
      { why: 'an empty object', value: {}, path: '/' },
    ],
  },
  DeploymentStatusQuery: {
    valid: [{}, { deployment_id: deploymentId }],
    invalid: [refuse('an empty id', {}, '/deployment_id', '')],
  },
  DeploymentActionParams: {
    valid: [{ deployment_id: deploymentId, action: 'promote' }, { deployment_id: deploymentId, action: 'rollback' }],
    invalid: [refuse('an unknown action', { deployment_id: deploymentId, action: 'pause' }, '/action', 'delete')],
  },
  DeploymentActionRequest: {
    valid: [{}, { reason: 'error rate up in explorers' }],
    invalid: [refuse('a reason too long', {}, '/reason', long(1025)), refuse('a reason that is a number', {}, '/reason', 1)],
  },
  LatestChangelogResponse: {
    valid: [
      changelogResponse,
      { ...changelogResponse, commit_sha: null },
      // Nothing published yet: 200 with an empty list (docs/ciris-compat.md D3).
      { artifact: 'agent', version: null, commit_sha: null, released_at: null, changelog: '', latest: { version: null, date: null, changes: [] }, summary: 'No agent release is published yet.' },
    ],
    invalid: [refuse('a commit SHA that is not hex', changelogResponse, '/commit_sha', 'zz')],
  },
};

describeWireFamily(deploy, examples);

it("keeps CIRIS's defaults for the notify fields it makes optional", () => {
  const properties = UpdateNotificationSchema.properties;
  expect(properties.message.default).toBe('Update available');
  expect(properties.strategy.default).toBe('canary');
  expect(properties.risk_level.default).toBe('unknown');
  expect(properties.source.default).toBe('github-actions');
  expect(properties.metadata.default).toEqual({});
  expect(UpdateNotificationSchema.required ?? []).toEqual([]);
});

