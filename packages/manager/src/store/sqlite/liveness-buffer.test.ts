import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LIVENESS_FLUSH_COUNT, LIVENESS_FLUSH_MS, LivenessBuffer } from './liveness-buffer.js';

describe('LivenessBuffer', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('writes the latest write of each agent in one batch once the flush delay has passed', () => {
    const batches: string[][] = [];
    const buffer = new LivenessBuffer<string>((batch) => batches.push([...batch]));
    buffer.add('a', 'a1');
    buffer.add('b', 'b1');
    buffer.add('a', 'a2');
    vi.advanceTimersByTime(LIVENESS_FLUSH_MS - 1);
    expect(batches).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(batches).toEqual([['a2', 'b1']]);
  });

  it('writes at once when full, and a flush leaves no timer that could write an older value later', () => {
    const batches: number[][] = [];
    const buffer = new LivenessBuffer<number>((batch) => batches.push([...batch]));
    for (let i = 0; i < LIVENESS_FLUSH_COUNT; i++) buffer.add(`agent-${i}`, i);
    expect(batches.map((batch) => batch.length)).toEqual([LIVENESS_FLUSH_COUNT]);
    buffer.add('late', -1);
    buffer.flush();
    buffer.flush();
    vi.advanceTimersByTime(LIVENESS_FLUSH_MS * 2);
    expect(batches.map((batch) => batch.length)).toEqual([LIVENESS_FLUSH_COUNT, 1]);
  });

  it('drops a batch whose timed write fails (liveness only) and keeps buffering', () => {
    let fail = true;
    const written: string[] = [];
    const buffer = new LivenessBuffer<string>((batch) => {
      if (fail) throw new Error('database is locked');
      written.push(...batch);
    });
    buffer.add('a', 'a1');
    vi.advanceTimersByTime(LIVENESS_FLUSH_MS);
    fail = false;
    buffer.add('a', 'a2');
    vi.advanceTimersByTime(LIVENESS_FLUSH_MS);
    expect(written).toEqual(['a2']);
  });
});
