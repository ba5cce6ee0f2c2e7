// The dudect statistic (Reparaz, Balasch, Verbauwhede: "Dude, is my code constant time?"): Welch's
// t-test between the timings of two classes of inputs, repeated over the samples cropped at a
// ladder of percentiles (interrupts and GC pauses make a long tail that hides a small, steady
// difference); the largest |t| is the verdict. bench/token-timing.ts (in process) and
// `drover agent-check` (over HTTP) both use it.

/** dudect's bound: |t| at or above it is a leak found. */
export const DUDECT_THRESHOLD = 4.5;

export interface WelchTest {
  /** The crop: `none`, or the percentile the samples were cut at, e.g. `p99.90`. */
  crop: string;
  t: number;
  /** Samples of each class under the crop. */
  n: [number, number];
  /** Mean time of each class under the crop, in the unit of the samples. */
  mean: [number, number];
}

export interface DudectResult {
  /** The test with the largest |t|. */
  worst: WelchTest;
  tests: WelchTest[];
  /** |t| below {@link DUDECT_THRESHOLD}. */
  pass: boolean;
}

interface Accumulator {
  n: number;
  mean: number;
  m2: number;
}

// Welch's t over the samples at or below `limit` (Welford's running mean and variance per class).
function welch(times: Float64Array, classes: Uint8Array, limit: number, crop: string): WelchTest {
  const stats: [Accumulator, Accumulator] = [
    { n: 0, mean: 0, m2: 0 },
    { n: 0, mean: 0, m2: 0 },
  ];
  for (let i = 0; i < times.length; i++) {
    const x = times[i] ?? 0;
    if (x > limit) continue;
    const s = stats[classes[i] === 0 ? 0 : 1];
    s.n += 1;
    const delta = x - s.mean;
    s.mean += delta / s.n;
    s.m2 += delta * (x - s.mean);
  }
  const [a, b] = stats;
  const variance = (s: Accumulator): number => s.m2 / Math.max(1, s.n - 1);
  const t = (a.mean - b.mean) / Math.sqrt(variance(a) / Math.max(1, a.n) + variance(b) / Math.max(1, b.n));
  // Two classes with no spread at all and different means are as distinguishable as it gets.
  const value = Number.isFinite(t) ? t : a.mean === b.mean ? 0 : Math.sign(a.mean - b.mean) * Number.MAX_VALUE;
  return { crop, t: value, n: [a.n, b.n], mean: [a.mean, b.mean] };
}

/**
 * Runs dudect's tests on `times[i]` measured for an input of class `classes[i]` (0 or 1, the
 * classes interleaved at random when measured).
 *
 * @example
 * ```ts
 * const { pass, worst } = dudect(times, classes)
 * ```
 */
export function dudect(times: Float64Array, classes: Uint8Array): DudectResult {
  const sorted = Float64Array.from(times).sort();
  const percentile = (p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? Infinity;
  const crops = [{ label: 'none', limit: Infinity }];
  for (let i = 0; i < 10; i++) {
    const p = 1 - 0.5 ** (i + 1);
    crops.push({ label: `p${(p * 100).toFixed(2)}`, limit: percentile(p) });
  }
  const tests = crops.map((crop) => welch(times, classes, crop.limit, crop.label));
  const worst = tests.reduce((a, b) => (Math.abs(b.t) > Math.abs(a.t) ? b : a));
  return { worst, tests, pass: Math.abs(worst.t) < DUDECT_THRESHOLD };
}
