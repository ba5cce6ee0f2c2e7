import { expect, it } from 'vitest';
import { at, commandResults, deploymentId, describeWireFamily, inventory, long, machineId, many, nonce, refuse, schemaOf, updateCommand } from '../../test/wire-examples.js';
import type { Examples } from '../../test/wire-examples.js';
import { matchesSchema } from '../validate.js';
import * as checkIn from './check-in.js';
import { CheckinResponseSchema } from './check-in.js';
import type { CheckinRequest, CheckinResponse } from './check-in.js';
import { CommandSchema } from './commands.js';
import { wireHeaders } from './common.js';

const health = { status: 'healthy', version: '1.2.2', busy: false, checkedAt: at };
const checkinRequest: CheckinRequest = {
  state: { agentVersion: '1.2.2', daemonVersion: '0.4.0', update: { commandId: 'cmd-01J9Z8', step: 'downloading', nonce } },
  health: { status: 'healthy', version: '1.2.2', busy: false, checkedAt: at },
  acks: ['cmd-01J9Z8'],
  results: commandResults,
  inventory,
};
const checkinResponse: CheckinResponse = { commands: [updateCommand], nextCheckinSeconds: 60 };

const examples: Record<string, Examples> = {
  DaemonState: {
    valid: [checkinRequest.state, { agentVersion: '1.2.2', daemonVersion: '0.4.0' }],
    invalid: [
      refuse('an unknown step', checkinRequest.state, '/update/step', 'installing'),
      refuse('a malformed nonce', checkinRequest.state, '/update/nonce', 'not a nonce'),
      refuse('a version that is a number', checkinRequest.state, '/agentVersion', 1.2),
    ],
  },
  AgentHealthReport: {
    valid: [health, { status: 'unreachable', busy: false }, { status: 'healthy', version: '1.2.2', busy: true, busyWith: ['db-migration'] }],
    invalid: [
      refuse('an unknown status', health, '/status', 'dead'),
      refuse('too many busy names', health, '/busyWith', many(65, 'job')),
    ],
  },
  CheckinRequest: {
    valid: [checkinRequest, { state: { agentVersion: '1.2.2', daemonVersion: '0.4.0' }, health: { status: 'stopped', busy: false }, acks: [], results: [] }],
    invalid: [
      refuse('too many acks', checkinRequest, '/acks', many(65, 'cmd-1')),
      refuse('an ack with a slash', checkinRequest, '/acks/0', 'cmd/1'),
      refuse('an unknown outcome', checkinRequest, '/results/0/outcome', 'done'),
      refuse('an unknown health status', checkinRequest, '/health/status', 'ok'),
      refuse('an unknown state field', checkinRequest, '/state/busy', true),
    ],
  },
  CheckinHeaders: {
    valid: [
      { 'x-machine-id': machineId, 'x-agent-version': '1.2.2', 'x-daemon-version': '0.4.0', 'user-agent': 'droverd/0.4.0' },
      { 'x-machine-id': machineId, 'x-agent-version': '1.2.2', 'x-daemon-version': '0.4.0', 'x-update-nonce': nonce },
    ],
    invalid: [
      refuse('an uppercase machine id', { 'x-machine-id': machineId, 'x-agent-version': '1', 'x-daemon-version': '1' }, '/x-machine-id', machineId.toUpperCase()),
      refuse('a malformed nonce', { 'x-machine-id': machineId, 'x-agent-version': '1', 'x-daemon-version': '1' }, '/x-update-nonce', 'abc'),
    ],
  },
  CheckinParams: {
    valid: [{ agentId: 'agent-7f3a' }, { agentId: deploymentId }],
    invalid: [
      refuse('a path traversal', { agentId: 'a' }, '/agentId', '../etc'),
      refuse('an id too long', { agentId: 'a' }, '/agentId', long(129)),
    ],
  },
  CheckinResponse: {
    valid: [checkinResponse, { commands: [{ id: 'cmd-9', type: 'collect_logs', since: at }], nextCheckinSeconds: 30 }],
    invalid: [
      refuse('an immediate re-check-in', checkinResponse, '/nextCheckinSeconds', 0),
      refuse('a command type with capitals', checkinResponse, '/commands/0/type', 'Update'),
      refuse('too many commands', checkinResponse, '/commands', many(33, updateCommand)),
    ],
  },
  CheckinUpgradeRequired: {
    valid: [{ error: { code: 'AGENT_VERSION_TOO_OLD', message: 'Agent 1.0.0 is below the minimum 1.2.0; the update command follows.' }, ...checkinResponse }],
    invalid: [refuse('a lower-case code', { error: { code: 'A', message: 'm' }, ...checkinResponse }, '/error/code', 'too_old')],
  },
};

describeWireFamily(checkIn, examples);

it('lets a daemon read a command of a type it does not know, and tell it apart from an update', () => {
  const future = { id: 'cmd-9', type: 'collect_logs', since: at };
  const response: unknown = { commands: [future, updateCommand], nextCheckinSeconds: 30 };
  expect(matchesSchema(CheckinResponseSchema, response)).toBe(true);
  if (!matchesSchema(CheckinResponseSchema, response)) return;
  expect(response.commands.map((command) => matchesSchema(CommandSchema, command))).toEqual([false, true]);
});

it('names check-in headers as Node presents them: lower-case', () => {
  for (const header of Object.values(wireHeaders)) expect(header).toBe(header.toLowerCase());
  expect(Object.keys(schemaOf('CheckinHeaders').properties as object)).toEqual([
    wireHeaders.machineId,
    wireHeaders.agentVersion,
    wireHeaders.daemonVersion,
    wireHeaders.updateNonce,
    wireHeaders.wait,
  ]);
});

