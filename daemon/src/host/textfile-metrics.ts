import { join } from 'node:path';
import type { UpdateStep } from '@drover/protocol';
import { writeFileAtomic } from './fs-atomic.js';

// droverd's metrics for node_exporter's textfile collector (`--collector.textfile.directory`):
// `droverd.prom` in the configured directory, rewritten atomically (a temp file named `.*.tmp`,
// which the collector skips, then a rename), so a scrape reads the old file or the new one, never
// half of one. Labels are the host's own few values (versions, step, outcome, code): one series
// each on a host, no secret and no id.

/** What droverd.prom reports: droverd's state at one instant. */
export interface DaemonMetricsSnapshot {
  daemonVersion: string;
  /** The installed agent version, or undefined when none is installed. */
  agentVersion: string | undefined;
  /** The update in progress: its artifact, step and agent-busy deferrals; undefined when none. */
  update: { artifact: string; step: UpdateStep; deferrals: number } | undefined;
  /** The last update's outcome, its code ("" when none), its artifact and when (ms since the epoch). */
  lastResult: { artifact: string; outcome: string; code: string; at: number } | undefined;
  /** The launcher's boots of an uncommitted droverd update (0 when none is being tried). */
  updateBoots: number;
  /** When this droverd process started (ms since the epoch). */
  startedAt: number;
}

// A label value in the text format: backslash, double quote and newline escaped.
function label(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** The Prometheus text format of a snapshot. */
export function renderDaemonMetrics(s: DaemonMetricsSnapshot): string {
  const lines: string[] = [];
  const metric = (name: string, type: string, help: string, samples: readonly [labels: string, value: number][]): void => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) lines.push(`${name}${labels === '' ? '' : `{${labels}}`} ${String(value)}`);
  };
  metric('droverd_info', 'gauge', 'droverd and agent versions on this host (always 1).', [[`daemon_version="${label(s.daemonVersion)}",agent_version="${label(s.agentVersion ?? '')}"`, 1]]);
  metric('droverd_update_in_progress', 'gauge', '1 while an update is being carried out, else 0.', [['', s.update === undefined ? 0 : 1]]);
  metric('droverd_update_step', 'gauge', 'The step of the update in progress (1 on its one series; none when idle).', s.update === undefined ? [] : [[`artifact="${label(s.update.artifact)}",step="${label(s.update.step)}"`, 1]]);
  metric('droverd_update_deferrals', 'gauge', 'Times the agent answered busy to the update in progress.', [['', s.update?.deferrals ?? 0]]);
  metric(
    'droverd_last_update_result',
    'gauge',
    "The last update's outcome and code (1 on its one series; none before the first update).",
    s.lastResult === undefined ? [] : [[`artifact="${label(s.lastResult.artifact)}",outcome="${label(s.lastResult.outcome)}",code="${label(s.lastResult.code)}"`, 1]],
  );
  metric('droverd_last_update_timestamp_seconds', 'gauge', 'When the last update ended (0 before the first).', [['', s.lastResult === undefined ? 0 : Math.floor(s.lastResult.at / 1000)]]);
  metric('droverd_update_boots', 'gauge', "The launcher's boots of an uncommitted droverd update (0 when none is being tried).", [['', s.updateBoots]]);
  metric('droverd_start_time_seconds', 'gauge', 'When this droverd process started; its changes count restarts.', [['', Math.floor(s.startedAt / 1000)]]);
  return `${lines.join('\n')}\n`;
}

/** Writes droverd.prom into `dir` when what it says changed. */
export class TextfileMetrics {
  readonly path: string;
  #last = '';

  constructor(dir: string) {
    this.path = join(dir, 'droverd.prom');
  }

  async write(snapshot: DaemonMetricsSnapshot): Promise<boolean> {
    const text = renderDaemonMetrics(snapshot);
    if (text === this.#last) return false;
    // 0644: node_exporter runs as its own user and only reads.
    await writeFileAtomic(this.path, text, { mode: 0o644 });
    this.#last = text;
    return true;
  }
}
