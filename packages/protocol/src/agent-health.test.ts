import { describe, expect, it } from 'vitest';
import { readAgentHealth } from './agent-health.js';

// The rules of decision 0035: both forms read; `data` when the answer is the CIRIS envelope; `busy`
// optional; healthy only when `healthy` and, with a cognitive state, in WORK.

const ciris = (data: Record<string, unknown>): unknown => ({
  data: { version: '2.9.33-stable', uptime_seconds: 3, services: {}, initialization_complete: true, timestamp: '2026-12-06T04:00:00Z', warnings: [], degraded_mode: false, ...data },
  metadata: { timestamp: '2026-12-06T04:00:00Z', request_id: null, duration_ms: 1 },
});

describe('readAgentHealth', () => {
  it("reads drover's SDK answer unchanged, and the flat form without busy as not busy", () => {
    expect(readAgentHealth({ status: 'healthy', version: '1.4.2', busy: true })).toEqual({ status: 'healthy', version: '1.4.2', busy: true, reported: 'healthy' });
    expect(readAgentHealth({ status: 'starting', version: '1.4.2' })).toEqual({ status: 'starting', version: '1.4.2', busy: false, reported: 'starting' });
  });

  it('reads the real CIRIS envelope: healthy only in WORK (case-insensitive), or without a cognitive state', () => {
    expect(readAgentHealth(ciris({ status: 'healthy', cognitive_state: 'WORK' }))).toEqual({ status: 'healthy', version: '2.9.33-stable', busy: false, reported: 'healthy, cognitive state WORK' });
    expect(readAgentHealth(ciris({ status: 'healthy', cognitive_state: 'work' }))?.status).toBe('healthy');
    expect(readAgentHealth(ciris({ status: 'healthy', cognitive_state: null }))?.status).toBe('healthy');
    expect(readAgentHealth(ciris({ status: 'healthy', cognitive_state: 'WAKEUP' }))).toMatchObject({ status: 'starting', reported: 'healthy, cognitive state WAKEUP' });
  });

  it('initializing waits; critical, degraded, WAKEUP_ERROR and degraded mode are not healthy', () => {
    expect(readAgentHealth(ciris({ status: 'initializing', cognitive_state: null }))?.status).toBe('starting');
    expect(readAgentHealth(ciris({ status: 'critical', cognitive_state: 'WORK' }))).toMatchObject({ status: 'degraded', reported: 'critical, cognitive state WORK' });
    expect(readAgentHealth(ciris({ status: 'degraded', cognitive_state: 'WORK' }))?.status).toBe('degraded');
    expect(readAgentHealth(ciris({ status: 'healthy', cognitive_state: 'WAKEUP_ERROR' }))?.status).toBe('degraded');
    expect(readAgentHealth(ciris({ status: 'healthy', cognitive_state: 'WORK', degraded_mode: true }))?.status).toBe('degraded');
  });

  it('refuses what is neither form', () => {
    for (const body of [null, 'healthy', {}, { status: 'ok', version: '1.0.0' }, { data: { status: 'starting', version: '1.0.0' } }, { data: { status: 'healthy' } }, { status: 'healthy', version: '1.0.0', busy: 'no' }]) {
      expect(readAgentHealth(body), JSON.stringify(body)).toBeUndefined();
    }
  });
});
