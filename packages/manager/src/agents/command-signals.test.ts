import { describe, expect, it } from 'vitest';
import { commandNotices } from '../store/postgres/store.js';
import { CommandSignals } from './command-signals.js';

describe('CommandSignals', () => {
  it('ends a hold at once when a notice came between the ticket and the hold (the command written while the check-in read)', async () => {
    const signals = new CommandSignals(10);
    const ticket = signals.ticket('agent-1');
    signals.notify(['agent-1']);
    const started = Date.now();
    expect(await signals.hold(ticket, 5_000, new AbortController().signal)).toBe('signalled');
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(signals.held).toBe(0);
  });

  it('wakes only the agent named, times out the others, and lets go when the host goes away', async () => {
    const signals = new CommandSignals(10);
    const gone = new AbortController();
    const a = signals.hold(signals.ticket('a'), 5_000, new AbortController().signal);
    const b = signals.hold(signals.ticket('b'), 50, new AbortController().signal);
    const c = signals.hold(signals.ticket('c'), 5_000, gone.signal);
    expect(signals.held).toBe(3);
    signals.notify(['a']);
    gone.abort();
    expect(await Promise.all([a, b, c])).toEqual(['signalled', 'timeout', 'released']);
    expect(signals.held).toBe(0);
  });

  it('holds no more than maxHeld, and none once closed (every held one released)', async () => {
    const signals = new CommandSignals(1);
    const first = signals.hold(signals.ticket('a'), 5_000, new AbortController().signal);
    expect(signals.full).toBe(true);
    expect(signals.hold(signals.ticket('b'), 5_000, new AbortController().signal)).toBeUndefined();
    signals.close();
    expect(await first).toBe('released');
    expect(signals.hold(signals.ticket('c'), 5_000, new AbortController().signal)).toBeUndefined();
  });
});

describe('commandNotices', () => {
  it('splits any number of agent ids, of any length, into NOTIFY payloads under 8000 bytes that name each id once', () => {
    const ids = Array.from({ length: 500 }, (_, i) => `agent-${String(i).padStart(4, '0')}-${'x'.repeat(118)}`);
    const payloads = commandNotices([...ids, ...ids.slice(0, 10)]);
    expect(payloads.length).toBeGreaterThan(1);
    for (const payload of payloads) expect(Buffer.byteLength(payload)).toBeLessThan(8000);
    expect(payloads.flatMap((p) => JSON.parse(p) as string[])).toEqual(ids);
    expect(commandNotices([])).toEqual([]);
  });
});
