import { at, describeWireFamily, long, many, patch, refuse } from '../../test/wire-examples.js';
import type { Examples } from '../../test/wire-examples.js';
import * as agentEndpoints from './agent-endpoints.js';

const busy = { error: { code: 'AGENT_BUSY', message: 'The agent is busy with db-migration. Retry after 5 s.', busy_with: ['db-migration'] } };
const shutdownRequest = {
  reason: 'System shutdown requested: Runtime: CD update to version v1.2.3 (deployment abc123) - fix: leak\n(API shutdown by wa-system-admin)',
  confirm: true,
};
const shutdownResponse = { data: { status: 'initiated', message: 'System shutdown initiated: CD update', shutdown_initiated: true, timestamp: at } };

// The real CIRIS agent's answer (CIRISAgent 2bd11fcb, SuccessResponse[SystemHealthResponse]).
const cirisHealth = {
  data: {
    status: 'healthy',
    version: '2.9.33-stable',
    uptime_seconds: 12.5,
    services: { total: { healthy: 22, unhealthy: 0 } },
    initialization_complete: true,
    cognitive_state: 'WORK',
    timestamp: at,
    warnings: [],
    degraded_mode: false,
  },
  metadata: { timestamp: at, request_id: null, duration_ms: 3 },
};

const examples: Record<string, Examples> = {
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
  CirisAgentHealth: {
    valid: [
      cirisHealth,
      patch(cirisHealth, '/data/status', 'initializing'),
      patch(patch(cirisHealth, '/data/status', 'critical'), '/data/cognitive_state', null),
      { data: { status: 'degraded', version: '2.9.33-stable' } },
    ],
    invalid: [
      refuse('the flat form', cirisHealth, '/data', undefined),
      refuse('a status the agent never reports', cirisHealth, '/data/status', 'starting'),
      refuse('an empty version', cirisHealth, '/data/version', ''),
      refuse('degraded_mode as a string', cirisHealth, '/data/degraded_mode', 'false'),
    ],
  },
};

describeWireFamily(agentEndpoints, examples);

