import { describe, expect, it } from 'vitest';
import { sseParser, watchFrame } from './rollout.js';

describe('rollout watch', () => {
  it('parses server-sent events split anywhere across chunks, with their ids', () => {
    const seen: [string, string, string | undefined][] = [];
    const parse = sseParser((type, data, id) => {
      seen.push([type, data, id]);
      return type !== 'stop';
    });
    const stream = 'retry: 2000\n\nid: 7\nevent: deployment\ndata: {"a":1}\n\n: keep-alive\n\nevent: status\r\ndata: {"b":2}\r\n\r\nevent: stop\ndata: x\n\nevent: late\ndata: y\n\n';
    let going = true;
    for (let i = 0; i < stream.length && going; i += 5) going = parse(stream.slice(i, i + 5));
    expect(going).toBe(false);
    expect(seen).toEqual([
      ['deployment', '{"a":1}', '7'],
      ['status', '{"b":2}', undefined],
      ['stop', 'x', undefined],
    ]);
  });

  it('draws the phase, counts per state, a progress bar per phase and the latest events', () => {
    const frame = watchFrame(
      {
        deployment_id: 'dep-1', status: 'in_progress', strategy: 'canary', artifact: 'agent', version: '2.0.0', canary_phase: '30%', phase_index: 1,
        phase_state: 'rolling', phases: [{ name: '10%', counts: { succeeded: 1 } }, { name: '30%', counts: { succeeded: 1, updating: 1 } }, { name: '100%', counts: { pending: 7 } }],
        counts: { succeeded: 2, updating: 1, pending: 7 }, agents_total: 10, agents_deferred: 0, message: 'Phase 30% started.',
      },
      [{ timestamp: '2026-11-24T15:00:00.000Z', event_type: 'phase_started', message: 'Phase 30% started.' }],
    );
    expect(frame).toContain('phase 30% (rolling)');
    expect(frame).toContain('updating 1  succeeded 2');
    expect(frame).toMatch(/ {2}10% +\[#{24}\] 1\/1/);
    expect(frame).toMatch(/> 30% +\[#{12}\.{12}\] 1\/2/);
    expect(frame).toMatch(/ {2}100% +\[\.{24}\] 0\/7/);
    expect(frame).toContain('15:00:00 phase_started: Phase 30% started.');
  });

  it('draws failures, rollbacks and skips apart from successes, and an empty phase as such', () => {
    const frame = watchFrame(
      {
        deployment_id: 'dep-2', status: 'failed', strategy: 'canary', artifact: 'agent', version: '2.0.0', canary_phase: '10%', phase_index: 1,
        phase_state: 'gate_failed', phases: [{ name: 'explorers', counts: {} }, { name: '10%', counts: { succeeded: 2, failed: 1, rolled_back: 1 } }, { name: '100%', counts: { skipped: 4 } }],
        counts: { succeeded: 2, failed: 1, rolled_back: 1, skipped: 4 }, agents_total: 8, agents_deferred: 0, message: 'Phase 10% failed its gate.',
      },
      [],
    );
    expect(frame).toMatch(/ {2}explorers +\[ +no hosts +\] 0\/0/);
    expect(frame).toMatch(/> 10% +\[#{12}x{12}\] 4\/4/);
    expect(frame).toMatch(/ {2}100% +\[-{24}\] 4\/4/);
    expect(frame).not.toMatch(/\[#{24}\]/);
  });

  it('lists each host with its phase, state and reason, those still moving first, at most 20 and a count of the rest', () => {
    const summary = {
      deployment_id: 'dep-3', status: 'in_progress', strategy: 'canary', artifact: 'agent', version: '2.0.0', canary_phase: '100%', phase_index: 0,
      phase_state: 'rolling', phases: [{ name: '100%', counts: { succeeded: 24, updating: 1 } }], counts: { succeeded: 24, updating: 1 }, agents_total: 25, agents_deferred: 0, message: 'Rolling.',
    };
    const hosts = Array.from({ length: 24 }, (_, i) => ({ agent_id: `agent-${String(i).padStart(2, '0')}`, state: 'succeeded', phase: '100%' }));
    hosts.push({ agent_id: 'agent-zz', state: 'updating', phase: '100%' });
    hosts[3] = { agent_id: 'agent-03', state: 'rolled_back', phase: '100%', error: { code: 'HEALTH_CHECK_FAILED' } } as (typeof hosts)[number];
    const frame = watchFrame(summary, [], hosts, new Date('2026-12-06T04:30:05Z'));
    expect(frame).toContain('status in_progress  (at 04:30:05)');
    const lines = frame.split('hosts:\n')[1]?.split('\n') ?? [];
    expect(lines[0]).toMatch(/^ {2}agent-zz +100% +updating$/);
    expect(frame).toMatch(/agent-03 +100% +rolled_back +HEALTH_CHECK_FAILED/);
    expect(lines.filter((l) => l.startsWith('  agent-'))).toHaveLength(20);
    expect(frame).toContain('  ... and 5 more');
  });
});
