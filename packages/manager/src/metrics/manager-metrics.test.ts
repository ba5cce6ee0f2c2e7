import type { CheckinRequest } from '@drover/protocol';
import { describe, expect, it } from 'vitest';
import { ManagerMetrics } from './manager-metrics.js';

type Result = CheckinRequest['results'][number];

function failed(code: unknown): Result {
  return { commandId: 'cmd-1', outcome: 'failed', detail: { code } } as unknown as Result;
}

async function codes(metrics: ManagerMetrics): Promise<Map<string, number>> {
  const { values } = await metrics.updateOutcomes.get();
  return new Map(values.filter((v) => v.labels['outcome'] === 'failed').map((v) => [String(v.labels['code']), v.value]));
}

describe('ManagerMetrics labels', () => {
  it('keeps a daemon-chosen result code to the shape of a code and to 64 distinct values, the rest counted as other', async () => {
    const metrics = new ManagerMetrics();
    const results = Array.from({ length: 100 }, (_, i) => failed(`CODE_${i}`));
    metrics.recordCheckin({ results: [...results, failed('agent-3f9c0d1e2a4b5c6d'), failed('x'.repeat(300)), failed(42), failed(undefined)] }, 0);
    const seen = await codes(metrics);
    expect([...seen.keys()].filter((code) => code.startsWith('CODE_'))).toHaveLength(64);
    // 36 codes beyond the cap, a host id and an overlong string: other; a number or none: "".
    expect(seen.get('other')).toBe(38);
    expect(seen.get('')).toBe(2);
    expect(seen.has('agent-3f9c0d1e2a4b5c6d')).toBe(false);
    // A code already kept is still counted under its name.
    metrics.recordCheckin({ results: [failed('CODE_0')] }, 0);
    expect((await codes(metrics)).get('CODE_0')).toBe(2);
  });

  it('counts busy deferrals from agent_deferred events, and an event type of another shape as other', async () => {
    const metrics = new ManagerMetrics();
    metrics.recordRolloutEvents([{ type: 'agent_deferred' }, { type: 'agent_deferred' }, { type: 'phase_passed' }, { type: 'Agent-3f9c' }]);
    expect((await metrics.busyDeferrals.get()).values[0]?.value).toBe(2);
    const types = new Map((await metrics.rolloutEvents.get()).values.map((v) => [String(v.labels['type']), v.value]));
    expect([types.get('agent_deferred'), types.get('phase_passed'), types.get('other'), types.get('gate_failed')]).toEqual([2, 1, 1, 0]);
  });
});
