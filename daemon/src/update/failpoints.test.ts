import { describe, expect, it } from 'vitest';
import { failpointsFromEnv } from './failpoints.js';

// Which passes of a point kill: the crash table arms `agent:spawned@2.0.0` (the update's new agent,
// not the boot's 1.0.0) and `agent:spawned@1.0.0#2` (the rollback's start of 1.0.0, after the boot's).

function passes(spec: string, hits: readonly [string, string?][]): number[] {
  const killedAt: number[] = [];
  let index = 0;
  const points = failpointsFromEnv({ DROVER_FAILPOINT: spec }, () => {
    killedAt.push(index);
  });
  for (const [name, version] of hits) {
    points.hit(name, version);
    index += 1;
  }
  return killedAt;
}

describe('failpoints: names, versions, occurrences', () => {
  it('a plain name fires at every pass of that point, whatever the version, and nowhere else', () => {
    expect(passes('swapped', [['staged'], ['swapped'], ['swapped:after'], ['swapped']])).toEqual([1, 3]);
    expect(passes('agent:spawned', [['agent:spawned', '1.0.0'], ['agent:spawned', '2.0.0']])).toEqual([0, 1]);
  });

  it('name@version fires only where the point passes that version; a step passes none', () => {
    expect(passes('agent:spawned@2.0.0', [['agent:spawned', '1.0.0'], ['agent:recorded', '2.0.0'], ['agent:spawned', '2.0.0']])).toEqual([2]);
    expect(passes('swapped@2.0.0', [['swapped']])).toEqual([]);
  });

  it('#n fires at the n-th matching pass only', () => {
    const hits: [string, string?][] = [['agent:spawned', '1.0.0'], ['agent:spawned', '2.0.0'], ['agent:spawned', '1.0.0'], ['agent:spawned', '1.0.0']];
    expect(passes('agent:spawned@1.0.0#2', hits)).toEqual([2]);
    expect(passes('agent:spawned#2', hits)).toEqual([1]);
  });

  it('several points, comma-separated with spaces; none armed when the variable is unset or empty', () => {
    expect(passes(' staged , agent:recorded@2.0.0 ', [['staged'], ['agent:recorded', '2.0.0']])).toEqual([0, 1]);
    expect(failpointsFromEnv({}).armed).toEqual([]);
    expect(failpointsFromEnv({ DROVER_FAILPOINT: '' }).armed).toEqual([]);
  });
});
