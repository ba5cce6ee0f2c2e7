import type { Metric, Registry } from 'prom-client';

// A Prometheus histogram for the hot paths (every request, every store call). prom-client's
// Histogram converts, validates and hashes the labels at every observe(): with three
// observations per check-in that was 5-8 % of a check-in's CPU (bench/checkin.ts). Here a label
// set is resolved once into a Series the caller keeps, and an observation is a bucket search and
// three additions. The exposition is prom-client's own: this object gives the registry the same
// `get()` shape its Histogram gives (`_bucket` per bound and `+Inf`, cumulative, then `_sum` and
// `_count`).

/** One label set's counts. */
export class Series {
  readonly #bounds: readonly number[];
  readonly counts: number[];
  sum = 0;
  count = 0;

  constructor(readonly labels: Readonly<Record<string, string>>, bounds: readonly number[]) {
    this.#bounds = bounds;
    this.counts = bounds.map(() => 0);
  }

  /** Counts one value (seconds, for the manager's histograms). */
  observe(value: number): void {
    const bounds = this.#bounds;
    for (let i = 0; i < bounds.length; i++) {
      if (value <= (bounds[i] ?? Infinity)) {
        this.counts[i] = (this.counts[i] ?? 0) + 1;
        break;
      }
    }
    this.sum += value;
    this.count += 1;
  }
}

export interface SeriesHistogramOptions<L extends string> {
  name: string;
  help: string;
  labelNames: readonly L[];
  buckets: readonly number[];
  registers: readonly Registry[];
}

/** A histogram with label names fixed by the code; each label set's Series is made once. */
export class SeriesHistogram<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly #labelNames: readonly L[];
  readonly #bounds: readonly number[];
  readonly #series = new Map<string, Series>();

  constructor(options: SeriesHistogramOptions<L>) {
    this.name = options.name;
    this.help = options.help;
    this.#labelNames = options.labelNames;
    this.#bounds = [...options.buckets].sort((a, b) => a - b);
    // The registry's own type names its four classes; it reads only name, help, type and get().
    for (const registry of options.registers) registry.registerMetric(this as unknown as Metric);
  }

  /** The Series of one label set (every label name given); keep it to observe without a lookup. */
  series(labels: Readonly<Record<L, string>>): Series {
    const key = this.#labelNames.map((name) => labels[name]).join('\u0000');
    let series = this.#series.get(key);
    if (series === undefined) {
      const own: Record<string, string> = {};
      for (const name of this.#labelNames) own[name] = labels[name];
      series = new Series(own, this.#bounds);
      this.#series.set(key, series);
    }
    return series;
  }

  observe(labels: Readonly<Record<L, string>>, value: number): void {
    this.series(labels).observe(value);
  }

  /** What prom-client's registry formats: the values of every label set. */
  get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: { labels: Record<string, string | number>; value: number; metricName: string }[] }> {
    const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
    for (const series of this.#series.values()) {
      let cumulative = 0;
      this.#bounds.forEach((bound, i) => {
        cumulative += series.counts[i] ?? 0;
        values.push({ labels: { le: bound, ...series.labels }, value: cumulative, metricName: `${this.name}_bucket` });
      });
      values.push({ labels: { le: '+Inf', ...series.labels }, value: series.count, metricName: `${this.name}_bucket` });
      values.push({ labels: { ...series.labels }, value: series.sum, metricName: `${this.name}_sum` });
      values.push({ labels: { ...series.labels }, value: series.count, metricName: `${this.name}_count` });
    }
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values });
  }

  /** Forgets every count (the registry's resetMetrics()). */
  reset(): void {
    this.#series.clear();
  }
}
