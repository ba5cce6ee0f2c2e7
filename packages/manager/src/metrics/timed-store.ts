import type { RolloutWrite } from '../rollouts/records.js';
import type { Store } from '../store/store.js';
import type { ManagerMetrics } from './manager-metrics.js';
import type { Series } from './series-histogram.js';

function secondsSince(start: number): number {
  return (performance.now() - start) / 1000;
}

/**
 * The store, timed: each Store method's latency goes to `drover_store_query_seconds` under the
 * method's name, without touching a query. Three methods also feed counters once they commit:
 * the audit records `completeAuditOutbox` moved into the log (`chainAuditOutbox` into the
 * database's chain), and the rollout events `writeRollout` wrote. Methods run on the store itself
 * (`this` is the store), so its private fields work.
 */
export function timedStore(store: Store, metrics: ManagerMetrics): Store {
  // By the method itself, not its name: a method replaced on the store (a test's fault) is timed as the new one.
  const timed = new WeakMap<object, unknown>();
  return new Proxy(store, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== 'function' || property === 'constructor') return value;
      const cached = timed.get(value);
      if (cached !== undefined) return cached;
      const method = value as (...args: unknown[]) => unknown;
      // The label is the method's name: a fixed set, whatever the arguments.
      const operation = typeof property === 'string' ? property : 'symbol';
      // Each label set made at its first observation (a series only for what happened, as prom-client does).
      let ok: Series | undefined;
      let failed: Series | undefined;
      const wrapped = function (this: unknown, ...args: unknown[]): unknown {
        const start = performance.now();
        let result: unknown;
        try {
          result = method.apply(target, args);
        } catch (error) {
          (failed ??= metrics.storeQuery.series({ operation, result: 'error' })).observe(secondsSince(start));
          throw error;
        }
        if (!(result instanceof Promise)) {
          (ok ??= metrics.storeQuery.series({ operation, result: 'ok' })).observe(secondsSince(start));
          return result;
        }
        return result.then(
          (settled: unknown) => {
            (ok ??= metrics.storeQuery.series({ operation, result: 'ok' })).observe(secondsSince(start));
            if (operation === 'completeAuditOutbox') metrics.auditAppends.inc((args[0] as readonly number[]).length);
            else if (operation === 'chainAuditOutbox') metrics.auditAppends.inc(settled as number);
            else if (operation === 'writeRollout') metrics.recordRolloutEvents((args[0] as RolloutWrite).events ?? []);
            else if (operation === 'createDeployment') metrics.recordRolloutEvents((settled as { ok: boolean }).ok ? ((args[2] as RolloutWrite['events']) ?? []) : []);
            return settled;
          },
          (error: unknown) => {
            (failed ??= metrics.storeQuery.series({ operation, result: 'error' })).observe(secondsSince(start));
            throw error;
          },
        );
      };
      timed.set(value, wrapped);
      return wrapped;
    },
  });
}
