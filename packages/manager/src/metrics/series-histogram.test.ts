import { Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { SeriesHistogram } from './series-histogram.js';

describe('SeriesHistogram', () => {
  it("exposes exactly what prom-client's Histogram exposes for the same observations", async () => {
    const [ours, theirs] = [new Registry(), new Registry()];
    const options = { name: 'drover_test_seconds', help: 'Test latency, by "op" and result.\nSecond line.', labelNames: ['op', 'result'] as const, buckets: [0.001, 0.01, 0.1, 1] };
    const series = new SeriesHistogram({ ...options, registers: [ours] });
    const histogram = new Histogram({ ...options, labelNames: [...options.labelNames], registers: [theirs] });
    const observations: [string, string, number][] = [['read', 'ok', 0.0005], ['read', 'ok', 0.001], ['read', 'ok', 0.05], ['read', 'error', 3], ['wr"ite\\', 'ok', 0.5], ['read', 'ok', 0]];
    const kept = series.series({ op: 'read', result: 'ok' });
    for (const [op, result, value] of observations) {
      if (op === 'read' && result === 'ok') kept.observe(value);
      else series.observe({ op, result }, value);
      histogram.observe({ op, result }, value);
    }
    const text = await ours.metrics();
    expect(text).toBe(await theirs.metrics());
    expect(text).toContain('drover_test_seconds_bucket{le="0.001",op="read",result="ok"} 3');
    expect(text).toContain('drover_test_seconds_count{op="read",result="error"} 1');
    // Reset forgets every series, as the registry's resetMetrics() asks.
    ours.resetMetrics();
    theirs.resetMetrics();
    expect(await ours.metrics()).toBe(await theirs.metrics());
  });
});
