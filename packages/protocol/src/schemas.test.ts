import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CheckinResponseSchema,
  CommandSchema,
  UpdateNotificationSchema,
  wireHeaders,
  wireSchemas,
} from './schemas.js';
import type {
  CheckinRequest,
  CheckinResponse,
  DsseEnvelope,
  NoncePayload,
  ReleasePayload,
  UpdateCommand,
  UpdateNotification,
} from './schemas.js';
import { matchesSchema, schemaProblems } from './validate.js';

// ---------------------------------------------------------------------------------------------
// Realistic values, built the way the real peers build them.

const hex64 = (seed: string): string => createHash('sha256').update(seed).digest('hex');
const machineId = hex64('machine-1');
const publicKey = Buffer.alloc(32, 7).toString('base64');
const signature = Buffer.alloc(64, 9).toString('base64');
const keyid = hex64('key').slice(0, 16);
const at = '2026-11-24T12:00:00.000Z';
const deploymentId = '3f1c2a9e-8b7d-4c6e-9a1f-2b3c4d5e6f70';
const changelog = 'fix: memory leak in telemetry service\nfeat: add new monitoring endpoint\ntest: improve coverage';

const releasePayload: ReleasePayload = {
  schema: 'drover.release/v1',
  artifact: 'agent',
  version: '1.2.3',
  commitSha: 'a1b2c3d4e5f6a7b8c9d0a1b2c3d4e5f6a7b8c9d0',
  channel: 'stable',
  platform: 'linux-x64',
  file: { name: 'agent-1.2.3-linux-x64.tar.gz', size: 18_874_368, sha256: hex64('artifact') },
  createdAt: at,
  expiresAt: '2027-02-22T12:00:00.000Z',
  changelog,
};
const envelope: DsseEnvelope = {
  payloadType: 'application/vnd.drover.release+json',
  payload: Buffer.from(JSON.stringify(releasePayload)).toString('base64'),
  signatures: [{ keyid, sig: signature }],
};
const noncePayload: NoncePayload = {
  v: 1,
  nonceId: 'n0nce-1d-0123456789ab',
  agentId: 'agent-7f3a',
  machineId,
  deploymentId,
  artifact: 'agent',
  fromVersion: '1.2.2',
  toVersion: '1.2.3',
  rollback: false,
  iat: 1_795_000_000,
  exp: 1_795_003_600,
};
const nonce = `${Buffer.from(JSON.stringify(noncePayload)).toString('base64url')}.${Buffer.alloc(64, 3).toString('base64url')}`;

const updateCommand: UpdateCommand = {
  id: 'cmd-01J9Z8',
  type: 'update',
  artifact: 'agent',
  release: envelope,
  url: '/v1/download/agent/1.2.3/linux-x64',
  nonce,
  force: false,
  drainTimeoutSeconds: 120,
  deadline: '2026-11-24T13:00:00.000Z',
};
const inventory = {
  os: { platform: 'linux', distro: 'Ubuntu', release: '24.04', codename: 'noble', kernel: '6.8.0-45-generic', arch: 'x64' },
  cpu: { manufacturer: 'Intel', brand: 'Xeon(R) Gold 6338', cores: 8, physicalCores: 4, speedGHz: 2.0 },
  memory: { totalBytes: 16_777_216_000, availableBytes: 9_000_000_000 },
  disks: [{ mount: '/', fs: '/dev/sda1', type: 'ext4', sizeBytes: 107_374_182_400, availableBytes: 53_687_091_200 }],
  uptimeSeconds: 86_400.5,
  facts: { 'cloud.provider': 'hetzner', 'gpu.count': 0, containerised: false, rack: null },
};
const health = { status: 'healthy', version: '1.2.2', busy: false, checkedAt: at };
const checkinRequest: CheckinRequest = {
  state: { agentVersion: '1.2.2', daemonVersion: '0.4.0', update: { commandId: 'cmd-01J9Z8', step: 'downloading', nonce } },
  health: { status: 'healthy', version: '1.2.2', busy: false, checkedAt: at },
  acks: ['cmd-01J9Z8'],
  results: [
    { commandId: 'cmd-01J9Y1', outcome: 'succeeded', detail: {}, nonce },
    { commandId: 'cmd-01J9Y2', outcome: 'rejected', detail: { code: 'RELEASE_SIGNATURE_INVALID', message: 'No trusted key signed the release.' } },
  ],
  inventory,
};
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
const auditRecord = {
  seq: 42,
  ts: at,
  event: 'agent.machine_id_mismatch',
  actor: 'agent:agent-7f3a',
  agentId: 'agent-7f3a',
  tokenId: hex64('credential').slice(0, 16),
  outcome: 'denied',
  details: { expected: machineId.slice(0, 16), got: hex64('machine-2').slice(0, 16) },
  prev: hex64('record 41'),
  hash: hex64('record 42'),
  kid: keyid,
  sig: signature,
};

// ---------------------------------------------------------------------------------------------
// Each schema: values it accepts, and values it refuses with the JSON pointer of the problem.

interface Refusal {
  why: string;
  value: unknown;
  path: string;
}
interface Examples {
  valid: unknown[];
  invalid: Refusal[];
}

/** A deep copy of `base` with the value at `path` (a JSON pointer) replaced, or removed when `value` is undefined. */
function patch(base: unknown, path: string, value: unknown): unknown {
  const copy: unknown = structuredClone(base);
  const keys = path.split('/').slice(1);
  const last = keys.pop();
  let node: unknown = copy;
  for (const key of keys) node = (node as Record<string, unknown>)[key];
  if (last === undefined || typeof node !== 'object' || node === null) throw new Error(`patch: no parent at ${path}`);
  const parent = node as Record<string, unknown>;
  if (value === undefined) Reflect.deleteProperty(parent, last);
  else parent[last] = value;
  return copy;
}
const refuse = (why: string, base: unknown, path: string, value: unknown): Refusal => ({ why, value: patch(base, path, value), path });
const many = <T>(count: number, item: T): T[] => Array.from({ length: count }, () => item);
const long = (length: number): string => 'x'.repeat(length);

const errorBody = { error: { code: 'MACHINE_ID_MISMATCH', message: 'X-Machine-ID differs from the enrolled machine. Re-enroll this host.' } };
const busy = { error: { code: 'AGENT_BUSY', message: 'The agent is busy with db-migration. Retry after 5 s.', busy_with: ['db-migration'] } };
const shutdownRequest = {
  reason: 'System shutdown requested: Runtime: CD update to version v1.2.3 (deployment abc123) - fix: leak\n(API shutdown by wa-system-admin)',
  confirm: true,
};
const shutdownResponse = { data: { status: 'initiated', message: 'System shutdown initiated: CD update', shutdown_initiated: true, timestamp: at } };
const enrollRequest = {
  enrollmentToken: 'enr_Zk3q9vX2LwYp7Tn4Rb8sMd1c',
  machineId,
  hostname: 'edge-fra-07.example.net',
  platform: 'linux-x64',
  arch: 'x64',
  agentVersion: '1.2.2',
  daemonVersion: '0.4.0',
  inventory,
};
const enrollResponse = {
  agentId: 'agent-7f3a',
  credential: 'cred.Zk3q9vX2LwYp7Tn4Rb8sMd1cQe5uHj6k',
  serviceToken: Buffer.alloc(32, 5).toString('base64url'),
  managerKeys: [{ keyid, publicKey }],
  checkinIntervalSeconds: 60,
};
const checkinResponse: CheckinResponse = { commands: [updateCommand], nextCheckinSeconds: 60 };
const releaseResponse = { release: envelope, manifest: releasePayload, url: 'https://cdn.example.net/agent/1.2.3/linux-x64?expires=1795000000&sig=' + hex64('sig') };
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
const signers = { signers: [{ kid: keyid, algorithm: 'ed25519', publicKey }] };

const examples: Record<string, Examples> = {
  DsseEnvelope: {
    valid: [envelope],
    invalid: [
      refuse('no signature', envelope, '/signatures', []),
      refuse('a payload that is not base64', envelope, '/payload', '{"not":"base64"}'),
    ],
  },
  ReleasePayload: {
    valid: [releasePayload],
    invalid: [
      refuse('another schema version', releasePayload, '/schema', 'drover.release/v2'),
      refuse('a negative size', releasePayload, '/file/size', -1),
      refuse('a file name with a path', releasePayload, '/file/name', '../agent.tar.gz'),
    ],
  },
  TrustPolicy: {
    valid: [{ threshold: 1, keys: [{ keyid, publicKey }] }],
    invalid: [refuse('a zero threshold', { threshold: 1, keys: [{ keyid, publicKey }] }, '/threshold', 0)],
  },
  NoncePayload: {
    valid: [noncePayload],
    invalid: [
      refuse('another version', noncePayload, '/v', 2),
      refuse('an uppercase machine id', noncePayload, '/machineId', machineId.toUpperCase()),
    ],
  },
  ErrorBody: {
    valid: [errorBody, patch(errorBody, '/error/retry_after', 5)],
    invalid: [
      refuse('a lower-case code', errorBody, '/error/code', 'machine_id_mismatch'),
      refuse('a message that is not a string', errorBody, '/error/message', { text: 'no' }),
      refuse('a message too long', errorBody, '/error/message', long(65537)),
    ],
  },
  ShutdownRequest: {
    valid: [shutdownRequest, { reason: 'maintenance', force: true, confirm: true }, { reason: '', confirm: false }],
    invalid: [
      refuse('a reason too long', shutdownRequest, '/reason', long(4097)),
      refuse('a reason that is not a string', shutdownRequest, '/reason', 42),
      refuse('force as a string', shutdownRequest, '/force', 'yes'),
      refuse('confirm as a string', shutdownRequest, '/confirm', 'true'),
    ],
  },
  ShutdownResponse: {
    valid: [shutdownResponse],
    invalid: [
      refuse('another status', shutdownResponse, '/data/status', 'accepted'),
      refuse('shutdown_initiated false', shutdownResponse, '/data/shutdown_initiated', false),
      refuse('a timestamp that is not RFC 3339', shutdownResponse, '/data/timestamp', 'Tue, 24 Nov 2026 12:00:00 GMT'),
    ],
  },
  AgentBusyError: {
    valid: [busy, patch(busy, '/error/busy_with', ['db-migration', 'upload #7'])],
    invalid: [
      refuse('another code', busy, '/error/code', 'INTERNAL_ERROR'),
      refuse('busy_with not a list', busy, '/error/busy_with', 'db-migration'),
      refuse('an empty name', busy, '/error/busy_with/0', ''),
      refuse('too many names', busy, '/error/busy_with', many(1025, 'job')),
    ],
  },
  AgentHealth: {
    valid: [{ status: 'healthy', version: '1.4.2', busy: false }, { status: 'starting', version: 'a1b2c3d', busy: true }],
    invalid: [
      refuse('an unknown status', { status: 'healthy', version: '1.4.2', busy: false }, '/status', 'ok'),
      refuse('busy as a string', { status: 'healthy', version: '1.4.2', busy: false }, '/busy', 'no'),
      refuse('an empty version', { status: 'healthy', version: '1.4.2', busy: false }, '/version', ''),
    ],
  },
  Inventory: {
    valid: [inventory, {}, { os: { platform: 'linux' } }],
    invalid: [
      refuse('a negative core count', inventory, '/cpu/cores', -1),
      refuse('an unknown OS field', inventory, '/os/flavor', 'vanilla'),
      refuse('a distro name too long', inventory, '/os/distro', long(257)),
      refuse('too many disks', inventory, '/disks', many(65, { mount: '/' })),
      refuse('a fact name with a space', inventory, '/facts/bad key', 'x'),
      refuse('a fact that is an object', inventory, '/facts/nested', { a: 1 }),
    ],
  },
  EnrollRequest: {
    valid: [enrollRequest],
    invalid: [
      refuse('an uppercase machine id', enrollRequest, '/machineId', machineId.toUpperCase()),
      refuse('a hostname with a space', enrollRequest, '/hostname', 'edge fra 07'),
      refuse('an enrollment token too short', enrollRequest, '/enrollmentToken', 'short'),
      refuse('an agent version too long', enrollRequest, '/agentVersion', long(129)),
      refuse('an unknown inventory field', enrollRequest, '/inventory/gpu', 'none'),
    ],
  },
  EnrollResponse: {
    valid: [enrollResponse],
    invalid: [
      refuse('no manager key', enrollResponse, '/managerKeys', []),
      refuse('a 33-byte public key', enrollResponse, '/managerKeys/0/publicKey', Buffer.alloc(33, 1).toString('base64')),
      refuse('a check-in interval of 1 s', enrollResponse, '/checkinIntervalSeconds', 1),
      refuse('a service token that is not base64url', enrollResponse, '/serviceToken', Buffer.alloc(32, 251).toString('base64')),
    ],
  },
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
  CommandResult: {
    valid: checkinRequest.results,
    invalid: [
      refuse('an unknown outcome', checkinRequest.results[0], '/outcome', 'done'),
      refuse('a code with spaces', checkinRequest.results[1], '/detail/code', 'BAD CODE'),
      refuse('an unknown detail field', checkinRequest.results[1], '/detail/stack', 'at x (y.js:1)'),
      refuse('a detail message too long', checkinRequest.results[1], '/detail/message', long(4097)),
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
  UpdateCommand: {
    valid: [updateCommand, { ...updateCommand, artifact: 'daemon', url: releaseResponse.url, force: true }],
    invalid: [
      refuse('another type', updateCommand, '/type', 'restart'),
      refuse('an unknown artifact', updateCommand, '/artifact', 'gui'),
      refuse('an ftp URL', updateCommand, '/url', 'ftp://mirror.example.net/agent.tar.gz'),
      refuse('a protocol-relative URL', updateCommand, '/url', '//evil.example.net/agent.tar.gz'),
      refuse('a negative drain timeout', updateCommand, '/drainTimeoutSeconds', -1),
      refuse('a deadline that is not a date', updateCommand, '/deadline', 'tomorrow'),
      refuse('an unsigned release', updateCommand, '/release/signatures', []),
    ],
  },
  Command: {
    valid: [updateCommand],
    invalid: [refuse('a type no daemon knows', updateCommand, '/type', 'reboot')],
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
  ReleaseLatestQuery: {
    valid: [{ artifact: 'agent', platform: 'linux-x64' }, { artifact: 'daemon', channel: 'beta', platform: 'linux-arm64' }],
    invalid: [
      refuse('an empty channel', { artifact: 'agent', platform: 'linux-x64' }, '/channel', ''),
      refuse('an uppercase artifact', { artifact: 'agent', platform: 'linux-x64' }, '/artifact', 'Agent'),
      refuse('a platform too long', { artifact: 'agent', platform: 'linux-x64' }, '/platform', long(65)),
    ],
  },
  ReleaseParams: {
    valid: [{ artifact: 'agent', version: '1.2.3' }, { artifact: 'agent', version: 'v1.2.3-rc.1+build.5' }, { artifact: 'agent', version: 'a1b2c3d' }],
    invalid: [
      refuse('an encoded path traversal', { artifact: 'agent', version: '1' }, '/version', '..%2F..%2Fetc'),
      refuse('a hidden file name', { artifact: 'agent', version: '1' }, '/version', '.hidden'),
    ],
  },
  ReleaseResponse: {
    valid: [releaseResponse, { ...releaseResponse, url: '/v1/download/agent/1.2.3/linux-x64' }],
    invalid: [
      refuse('a javascript: URL', releaseResponse, '/url', 'javascript:alert(1)'),
      refuse('a manifest of another schema', releaseResponse, '/manifest/schema', 'drover.release/v0'),
      refuse('a release that is not an envelope', releaseResponse, '/release/payload', 42),
    ],
  },
  DownloadParams: {
    valid: [{ artifact: 'agent', version: '1.2.3', platform: 'linux-x64' }],
    invalid: [refuse('a platform with a slash', { artifact: 'agent', version: '1.2.3', platform: 'linux-x64' }, '/platform', 'linux/x64')],
  },
  DownloadQuery: {
    valid: [{}, { expires: '1795000000', sig: hex64('sig') }],
    invalid: [
      refuse('expires that is not a number', { expires: '1', sig: hex64('sig') }, '/expires', 'soon'),
      refuse('an uppercase signature', { expires: '1', sig: hex64('sig') }, '/sig', hex64('sig').toUpperCase()),
    ],
  },
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
    ],
    invalid: [
      refuse('an unknown strategy', updateNotification, '/strategy', 'rolling'),
      refuse('an unknown risk level', updateNotification, '/risk_level', 'critical'),
      refuse('a changelog too long', updateNotification, '/changelog', long(65537)),
      refuse('a commit SHA that is not hex', updateNotification, '/commit_sha', 'main'),
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
    valid: [changelogResponse, { ...changelogResponse, commit_sha: null }],
    invalid: [refuse('a commit SHA that is not hex', changelogResponse, '/commit_sha', 'zz')],
  },
  AuditRecord: {
    valid: [auditRecord, { ...auditRecord, seq: 1, prev: '0'.repeat(64), details: {} }],
    invalid: [
      refuse('seq 0', auditRecord, '/seq', 0),
      refuse('a short prev', auditRecord, '/prev', hex64('x').slice(1)),
      refuse('a 63-byte signature', auditRecord, '/sig', Buffer.alloc(63).toString('base64')),
      refuse('details that are a list', auditRecord, '/details', []),
      refuse('an empty event', auditRecord, '/event', ''),
      refuse('a kid with a space', auditRecord, '/kid', 'audit key'),
    ],
  },
  AuditSigners: {
    valid: [signers],
    invalid: [
      refuse('another algorithm', signers, '/signers/0/algorithm', 'rsa'),
      refuse('no signer', signers, '/signers', []),
      refuse('a hex public key', signers, '/signers/0/publicKey', Buffer.alloc(32, 7).toString('hex')),
      refuse('an unknown signer field', signers, '/signers/0/comment', 'old key'),
    ],
  },
};

// ---------------------------------------------------------------------------------------------

function schemaOf(name: string): (typeof wireSchemas)[string] {
  const schema = wireSchemas[name];
  if (schema === undefined) throw new Error(`no wire schema ${name}`);
  return schema;
}

function paths(name: string, value: unknown): string[] {
  return schemaProblems(schemaOf(name), value, 100).map((problem) => problem.path);
}

describe('wire schemas', () => {
  it('have examples for every schema, and every schema is named by its $id', () => {
    expect(Object.keys(examples).sort()).toEqual(Object.keys(wireSchemas).sort());
    for (const [name, schema] of Object.entries(wireSchemas)) expect(schema.$id, name).toBe(name);
  });

  describe.each(Object.keys(wireSchemas))('%s', (name) => {
    const schema = schemaOf(name);
    const { valid, invalid } = examples[name] ?? { valid: [], invalid: [] };
    const isObject = schema.type === 'object';
    const required = isObject && Array.isArray(schema.required) ? (schema.required as string[]) : [];
    const [example] = valid;

    it('accepts realistic values', () => {
      expect(valid.length).toBeGreaterThan(0);
      for (const value of valid) {
        expect(schemaProblems(schema, value)).toEqual([]);
        expect(matchesSchema(schema, value)).toBe(true);
      }
    });

    it.each(invalid.map((refusal) => [refusal.why, refusal] as const))('refuses %s', (_why, { value, path }) => {
      expect(matchesSchema(schema, value)).toBe(false);
      expect(paths(name, value)).toContain(path);
    });

    it.runIf(required.length > 0).each(required)('refuses a value without %s', (property) => {
      const value = patch(example, `/${property}`, undefined);
      expect(matchesSchema(schema, value)).toBe(false);
      expect(paths(name, value)).toContain(`/${property}`);
    });

    // Strict on input, tolerant on output: requests refuse unknown fields; responses and files
    // accept them, so a newer peer can add one without breaking an older one.
    if (schema.additionalProperties === false) {
      it('refuses an unknown property (it is a request or a strict file)', () => {
        expect(paths(name, { ...(example as object), unexpected: 1 })).toContain('/unexpected');
      });
    } else if (isObject) {
      it('accepts an unknown property (it is read by peers that may be older)', () => {
        expect(schemaProblems(schema, { ...(example as object), added_in_a_later_version: 1 })).toEqual([]);
      });
    }
  });

  it('is strict exactly on what drover receives and on strict files', () => {
    // Written out rather than derived from the schemas, so a schema that loses (or gains)
    // additionalProperties: false fails here.
    const strict = [
      'DsseEnvelope',
      'ReleasePayload',
      'TrustPolicy',
      'NoncePayload',
      'ShutdownRequest',
      'Inventory',
      'EnrollRequest',
      'DaemonState',
      'AgentHealthReport',
      'CommandResult',
      'CheckinRequest',
      'CheckinParams',
      'ReleaseLatestQuery',
      'ReleaseParams',
      'DownloadParams',
      'DownloadQuery',
      'UpdateNotification',
      'DeploymentStatusQuery',
      'DeploymentActionParams',
      'DeploymentActionRequest',
      'AuditSigners',
    ];
    const actual = Object.entries(wireSchemas)
      .filter(([, schema]) => schema.additionalProperties === false)
      .map(([name]) => name);
    expect(actual.sort()).toEqual(strict.sort());
  });

  it('refuses a value of the wrong type at the root', () => {
    for (const name of Object.keys(wireSchemas)) {
      expect(paths(name, 'a string'), name).toContain('/');
      expect(paths(name, [example(name)]), name).toContain('/');
    }
  });

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
    ]);
  });

  it("keeps CIRIS's defaults for the notify fields it makes optional", () => {
    const properties = UpdateNotificationSchema.properties;
    expect(properties.message.default).toBe('Update available');
    expect(properties.strategy.default).toBe('canary');
    expect(properties.risk_level.default).toBe('unknown');
    expect(properties.source.default).toBe('github-actions');
    expect(properties.metadata.default).toEqual({});
    expect(UpdateNotificationSchema.required ?? []).toEqual([]);
  });
});

function example(name: string): unknown {
  return examples[name]?.valid[0];
}

// ---------------------------------------------------------------------------------------------

describe('schemaProblems on arbitrary input', () => {
  // A malformed request must get a 4xx, never a 5xx: validation has to answer for any JSON value
  // (and for whatever else a caller hands it), and agree with matchesSchema.
  it.each(Object.keys(wireSchemas))('never throws for %s, and agrees with matchesSchema', (name) => {
    const schema = schemaOf(name);
    fc.assert(
      fc.property(fc.oneof(fc.jsonValue(), fc.anything()), (value) => {
        const problems = schemaProblems(schema, value);
        expect(problems.length).toBeLessThanOrEqual(5);
        expect(problems.length === 0).toBe(matchesSchema(schema, value));
      }),
      { numRuns: 200 },
    );
  });

  it.each(Object.keys(wireSchemas).filter((name) => schemaOf(name).additionalProperties === false))(
    '%s refuses any unknown property added to a valid value',
    (name) => {
      const schema = schemaOf(name);
      const known = new Set(Object.keys((schema.properties ?? {}) as object));
      fc.assert(
        fc.property(
          fc.string({ minLength: 1, maxLength: 20 }).filter((key) => !known.has(key)),
          fc.jsonValue(),
          (key, extra) => {
            expect(matchesSchema(schema, { ...(example(name) as object), [key]: extra })).toBe(false);
          },
        ),
        { numRuns: 50 },
      );
    },
  );
});

// ---------------------------------------------------------------------------------------------

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const script = join(repoRoot, 'packages', 'protocol', 'scripts', 'write-json-schemas.js');
const compiled = join(repoRoot, 'packages', 'protocol', 'dist', 'schemas.js');
const execFileAsync = promisify(execFile);

async function readJson(path: string): Promise<unknown> {
  return JSON.parse(await readFile(path, 'utf8')) as unknown;
}

/** A JSON copy of a schema as the file should hold it: nested `$id`s removed. */
function expectedFile(name: string): Record<string, unknown> {
  const strip = (node: unknown, root: boolean): unknown => {
    if (Array.isArray(node)) return node.map((item) => strip(item, false));
    if (node === null || typeof node !== 'object') return node;
    return Object.fromEntries(
      Object.entries(node)
        .filter(([key]) => root || key !== '$id')
        .map(([key, value]) => [key, key === 'const' || key === 'default' ? value : strip(value, false)]),
    );
  };
  return { $schema: 'https://json-schema.org/draft/2020-12/schema', ...(strip(JSON.parse(JSON.stringify(schemaOf(name))), true) as object) };
}

function nestedIds(node: unknown, root = true): number {
  if (Array.isArray(node)) return node.reduce((sum: number, item) => sum + nestedIds(item, false), 0);
  if (node === null || typeof node !== 'object') return 0;
  const own = !root && '$id' in node ? 1 : 0;
  return Object.values(node).reduce((sum: number, value) => sum + nestedIds(value, false), own);
}

describe('write-json-schemas.js', () => {
  it('writes every wire schema as a self-contained JSON Schema file, and an index', async () => {
    expect(existsSync(compiled), `${compiled} is missing: build first (npm run build, or npx tsc --build tsconfig.build.json)`).toBe(true);
    const out = await mkdtemp(join(tmpdir(), 'drover-schemas-'));
    try {
      await execFileAsync(process.execPath, [script, '--out', out]);
      const names = Object.keys(wireSchemas);

      const index = (await readJson(join(out, 'index.json'))) as { schemas: { name: string; file: string }[] };
      // A difference here means dist is older than src: rebuild.
      expect(index.schemas.map((entry) => entry.name)).toEqual(names);
      expect((await readdir(out)).sort()).toEqual([...names.map((name) => `${name}.json`), 'index.json'].sort());

      for (const name of names) {
        const file = (await readJson(join(out, `${name}.json`))) as Record<string, unknown>;
        expect(file.$id, name).toBe(name);
        expect(file.$schema, name).toBe('https://json-schema.org/draft/2020-12/schema');
        expect(nestedIds(file), name).toBe(0);
        expect(file, name).toEqual(expectedFile(name));
      }
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });
});
