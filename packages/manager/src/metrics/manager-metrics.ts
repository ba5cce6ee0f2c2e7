import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { CheckinRequest } from '@drover/protocol';
import type { DeploymentRecord } from '../rollouts/records.js';
import type { Store } from '../store/store.js';
import { SeriesHistogram } from './series-histogram.js';

// The manager's Prometheus metrics (decision 0033). One Registry per manager: several managers
// run in one process (tests, an app mounting managerPlugin twice), and prom-client's global
// registry would mix their counts and refuse a second registration of each name.
//
// Cardinality: every label takes values from a set fixed by the code (outcomes, states, route
// templates, store method names, status classes), never a host id, a deployment id, a version, a
// raw URL or anything a secret could reach. The one value a client chooses, the error code of an
// update result, is kept to the shape of a code and to a bounded number of distinct codes.

/** Distinct update-result codes kept as label values; later ones are counted as `other`. */
const MAX_RESULT_CODES = 64;
const CODE_PATTERN = /^[A-Z][A-Z0-9_]{0,63}$/;
const EVENT_TYPE_PATTERN = /^[a-z][a-z_]{0,39}$/;
const FINAL_OUTCOMES: ReadonlySet<string> = new Set(['succeeded', 'failed', 'rolled_back', 'rejected']);
/** Active deployments read per scrape (one per artifact in practice). */
const SCRAPE_DEPLOYMENTS_MAX = 100;

// Seconds: from a few milliseconds (an indexed SQLite read) to seconds (a PostgreSQL lock wait).
const QUERY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
const HTTP_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
// Seconds from a command queued to its update committed: a check-in interval to hours of soak and deferral.
const COMMITTED_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400];

/** The check-in outcome of an HTTP status of the check-in route. */
export function checkinOutcome(statusCode: number): string {
  if (statusCode === 200) return 'ok';
  if (statusCode === 426) return 'upgrade_required';
  if (statusCode === 401 || statusCode === 403) return 'unauthorized';
  if (statusCode === 409) return 'conflict';
  if (statusCode === 503) return 'unavailable';
  if (statusCode >= 500) return 'error';
  return 'refused';
}

/** `2xx`, `4xx`...: what an HTTP status is counted as. */
export function statusClass(statusCode: number): string {
  return statusCode >= 100 && statusCode < 600 ? `${Math.floor(statusCode / 100)}xx` : 'other';
}

/**
 * The metrics of one manager, in a registry of its own. The counters are fed by the check-in path,
 * the store wrapper (./timed-store.ts) and the HTTP hooks (./routes.ts); the rollout and fleet
 * gauges are read from the store at each scrape, so they are right across restarts and replicas.
 */
export class ManagerMetrics {
  readonly registry = new Registry();
  readonly checkins: Counter<'outcome'>;
  readonly commandsDelivered: Counter;
  readonly updateOutcomes: Counter<'outcome' | 'code'>;
  readonly busyDeferrals: Counter;
  readonly rolloutEvents: Counter<'type'>;
  readonly commandCommitted: Histogram;
  readonly auditAppends: Counter;
  readonly storeQuery: SeriesHistogram<'operation' | 'result'>;
  readonly httpRequest: SeriesHistogram<'route' | 'method' | 'status_class'>;
  readonly #codes = new Set<string>();
  #store: Store | undefined;
  #held: (() => number) | undefined;

  readonly checkinInterval: Gauge;

  constructor() {
    const registers = [this.registry];
    this.checkins = new Counter({ name: 'drover_checkins_total', help: 'Check-ins answered, by outcome (ok, upgrade_required, unauthorized, conflict, refused, unavailable, error).', labelNames: ['outcome'], registers });
    this.commandsDelivered = new Counter({ name: 'drover_commands_delivered_total', help: 'Commands handed to daemons in check-in answers (a command resent until acked counts each time).', registers });
    this.updateOutcomes = new Counter({ name: 'drover_update_outcomes_total', help: 'Final update results accepted from daemons, by outcome and error code ("" when none).', labelNames: ['outcome', 'code'], registers });
    this.busyDeferrals = new Counter({ name: 'drover_busy_deferrals_total', help: 'Times a rollout target was deferred because its agent was busy (pull and push mode).', registers });
    this.rolloutEvents = new Counter({ name: 'drover_rollout_events_total', help: 'Rollout events written by this manager, by type (phase_passed, gate_failed, agent_failed, ...).', labelNames: ['type'], registers });
    this.commandCommitted = new Histogram({ name: 'drover_command_committed_seconds', help: 'Seconds from an update command queued to its host reporting it succeeded.', buckets: COMMITTED_BUCKETS, registers });
    this.auditAppends = new Counter({ name: 'drover_audit_appends_total', help: 'Audit records moved into the hash-chained audit log.', registers });
    // The two observed at every request and store call: label sets resolved once (series-histogram.ts).
    this.storeQuery = new SeriesHistogram({ name: 'drover_store_query_seconds', help: 'Latency of store operations, by Store method and result (ok, error).', labelNames: ['operation', 'result'], buckets: QUERY_BUCKETS, registers });
    this.httpRequest = new SeriesHistogram({ name: 'drover_http_request_duration_seconds', help: 'HTTP request latency, by route template, method and status class.', labelNames: ['route', 'method', 'status_class'], buckets: HTTP_BUCKETS, registers });
    // The gauges' collect() runs with `this` bound to the gauge: the store is reached through these arrows.
    const storeOf = (): Store | undefined => this.#store;
    const activeDeployments = async (): Promise<DeploymentRecord[]> => (await storeOf()?.listDeployments({ active: true, limit: SCRAPE_DEPLOYMENTS_MAX })) ?? [];
    new Gauge({
      name: 'drover_rollouts',
      help: 'Active rollouts (pending, in_progress, paused, rolling_back), by status, phase state and current phase index; read from the store at scrape.',
      labelNames: ['status', 'phase_state', 'phase'],
      registers,
      async collect() {
        this.reset();
        for (const deployment of await activeDeployments()) this.inc({ status: deployment.status, phase_state: deployment.phaseState, phase: String(deployment.phaseIndex) });
      },
    });
    new Gauge({
      name: 'drover_rollout_targets',
      help: 'Targets of the active rollouts, by state (notified, deferred, updating, health_check, succeeded, failed, ...); read from the store at scrape.',
      labelNames: ['state'],
      registers,
      async collect() {
        this.reset();
        for (const deployment of await activeDeployments()) {
          const counts = await storeOf()?.countTargets(deployment.id);
          for (const [state, count] of Object.entries(counts?.byState ?? {})) this.inc({ state }, count);
        }
      },
    });
    new Gauge({
      name: 'drover_agents',
      help: 'Hosts enrolled in the store; read at scrape.',
      registers,
      async collect() {
        const store = storeOf();
        if (store !== undefined) this.set(await store.countAgents());
      },
    });
    const heldOf = (): number => this.#held?.() ?? 0;
    new Gauge({
      name: 'drover_channel_held',
      help: 'Check-ins this manager holds now on the command channel, each an open connection waiting for a command; read at scrape.',
      registers,
      collect() {
        this.set(heldOf());
      },
    });
    // Series that alerts and dashboards read start at 0, so rate() and increase() see their first event.
    for (const outcome of ['ok', 'upgrade_required', 'unauthorized', 'refused']) this.checkins.inc({ outcome }, 0);
    for (const outcome of FINAL_OUTCOMES) this.updateOutcomes.inc({ outcome, code: '' }, 0);
    for (const type of ['created', 'phase_started', 'phase_passed', 'gate_failed', 'completed', 'failed', 'agent_updated', 'agent_failed', 'agent_deferred', 'agent_rolled_back']) this.rolloutEvents.inc({ type }, 0);
    this.checkinInterval = new Gauge({ name: 'drover_checkin_interval_seconds', help: 'Seconds between two check-ins of a host, as this manager tells daemons.', registers });
  }

  /** Check-ins held now on the command channel (decision 0041), read at scrape. */
  bindChannel(held: () => number): void {
    this.#held = held;
  }

  /** The store the scrape-time gauges read (the manager's, once open). */
  bindStore(store: Store): void {
    this.#store = store;
  }

  /** The Prometheus text exposition of every metric. */
  scrape(): Promise<string> {
    return this.registry.metrics();
  }

  /** Counts what a check-in that the manager accepted brought: commands handed out and final update results. */
  recordCheckin(body: Pick<CheckinRequest, 'results'>, delivered: number): void {
    if (delivered > 0) this.commandsDelivered.inc(delivered);
    for (const result of body.results) {
      if (!FINAL_OUTCOMES.has(result.outcome)) continue;
      this.updateOutcomes.inc({ outcome: result.outcome, code: this.#codeLabel(result.detail['code']) });
    }
  }

  /** Counts the events of one rollout step the store committed. */
  recordRolloutEvents(events: readonly { type: string }[]): void {
    for (const event of events) {
      const type = EVENT_TYPE_PATTERN.test(event.type) ? event.type : 'other';
      this.rolloutEvents.inc({ type });
      if (type === 'agent_deferred') this.busyDeferrals.inc();
    }
  }

  // A daemon chooses the code it reports: only the shape of a code, and a bounded number of them.
  #codeLabel(code: unknown): string {
    if (typeof code !== 'string' || code === '') return '';
    if (!CODE_PATTERN.test(code)) return 'other';
    if (this.#codes.has(code)) return code;
    if (this.#codes.size >= MAX_RESULT_CODES) return 'other';
    this.#codes.add(code);
    return code;
  }
}
