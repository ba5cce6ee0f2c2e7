import type { RolloutOptions, TargetCounts } from './records.js';

// A phase's gate: enough of its targets succeeded (minHealthyRatio of those not skipped) and no
// more than maxFailures failed. Failures decide early (a bad release stops as soon as it is
// known to be bad); success waits until every target of the phase has ended.

export type GateVerdict = { verdict: 'open' } | { verdict: 'passed'; succeeded: number; eligible: number } | { verdict: 'failed'; reason: string; failed: number; succeeded: number; eligible: number };

export function evaluateGate(counts: TargetCounts, options: Pick<RolloutOptions, 'minHealthyRatio' | 'maxFailures'>): GateVerdict {
  const total = Object.values(counts).reduce((sum, n) => sum + n, 0);
  const succeeded = counts.succeeded ?? 0;
  const failed = (counts.failed ?? 0) + (counts.rolled_back ?? 0);
  const skipped = counts.skipped ?? 0;
  const eligible = total - skipped;
  if (failed > options.maxFailures) {
    return { verdict: 'failed', reason: `${failed} target(s) failed, more than maxFailures ${options.maxFailures}`, failed, succeeded, eligible };
  }
  if (succeeded + failed + skipped < total) return { verdict: 'open' };
  const ratio = eligible === 0 ? 1 : succeeded / eligible;
  if (ratio + 1e-9 < options.minHealthyRatio) {
    return { verdict: 'failed', reason: `${succeeded} of ${eligible} target(s) succeeded, below minHealthyRatio ${options.minHealthyRatio}`, failed, succeeded, eligible };
  }
  return { verdict: 'passed', succeeded, eligible };
}
