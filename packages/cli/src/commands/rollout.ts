import { setTimeout as sleep } from 'node:timers/promises';
import type { Command, CommandInput, CommandResult, OptionValues } from '../cli.js';
import { optionalString } from '../cli.js';
import { CliError } from '../errors.js';
import { readInput } from '../fs-atomic.js';
import { camelCaseKeys } from '../json-case.js';
import { connectionFlags, operatorClient, operatorOptions } from '../operator.js';

// `drover rollout ...`: start a deployment through the deploy API (CIRIS's notify), see it, steer
// it, and watch it live from the manager's server-sent events.

type Counts = Partial<Record<string, number>>;

interface Summary {
  deployment_id: string;
  status: string;
  strategy: string;
  artifact: string;
  version: string;
  canary_phase: string | null;
  phase_index: number;
  phase_state: string;
  phases: { name: string; counts: Counts }[];
  counts: Counts;
  agents_total: number;
  agents_deferred: number;
  message: string;
}

interface StatusAnswer {
  deployment_id: string;
  status: string;
  strategy: string | null;
  version: string | null;
  canary_phase: string | null;
  agents_total: number;
  agents_updated: number;
  agents_deferred: number;
  agents_failed: number;
  message: string;
  events: { timestamp: string; event_type: string; message: string }[];
  agents: { agent_id: string; state: string; phase: string | null; error?: { code: string; message?: string } | null }[];
}

const WATCH_RECONNECTS = 30; // times `watch` resumes a broken event stream
const WATCH_RECONNECT_MS = 1000; // milliseconds between two attempts
const FINAL_STATUSES = new Set(['completed', 'failed', 'cancelled', 'rolled_back', 'rejected']);
const STATES = ['pending', 'notified', 'deferred', 'updating', 'health_check', 'succeeded', 'failed', 'skipped', 'rolled_back'];

function number(values: OptionValues, name: string, min: number, max: number): number | undefined {
  const text = optionalString(values, name);
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isFinite(value) || value < min || value > max) throw new CliError('USAGE_ERROR', `--${name} takes a number from ${min} to ${max}; got "${text}".`);
  return value;
}

/**
 * `rollout start`. Its --help shows the manager's default for each rollout option, so its module
 * loads @drover/manager (where the defaults live) when this command is used, and only then.
 */
export async function rolloutStartCommand(): Promise<Command> {
  const { defaultRolloutOptions: d } = await import('@drover/manager');
  // The CLI sends only the options given, so the manager's own defaults (manager.json settings.rollout) still apply.
  return {
    usage: '--manager URL --version V [--strategy canary|immediate|manual] [options]',
    description:
      'The token comes from $DROVER_DEPLOY_TOKEN (else $DROVER_ADMIN_TOKEN) or --token-file. A rollout option left out is\n' +
      "the manager's to choose: the defaults of its manager.json (`settings.rollout`), else the ones shown.",
    options: {
      ...operatorOptions('deploy-or-admin'),
      version: { type: 'string', arg: 'V', help: 'The version to roll out (published for the daemons\' platforms).' },
      artifact: { type: 'string', arg: 'agent|daemon', help: 'The artifact (default: agent).' },
      strategy: { type: 'string', arg: 'S', help: 'canary, immediate or manual (default: canary).' },
      release: { type: 'string', arg: 'FILE', help: 'A signed release envelope (FILE.release.json) to register and roll out.' },
      'changelog-file': { type: 'string', arg: 'FILE', aliases: ['changelog'], help: 'Release notes, one entry a line (shown to agents in the shutdown reason).' },
      'commit-sha': { type: 'string', arg: 'SHA', aliases: ['commit'], help: 'The commit the release was built from.' },
      supersede: { type: 'boolean', help: 'Replace an active deployment of the artifact instead of failing with DEPLOYMENT_ACTIVE.' },
      percentages: { type: 'string', arg: 'LIST', help: `Cumulative canary shares in percent (default: ${d.percentages.join(',')}).` },
      'max-in-flight': { type: 'string', arg: 'N', help: `Agents updating at once (default: ${String(d.maxInFlight)}).` },
      'soak-seconds': { type: 'string', arg: 'S', help: `Seconds to wait after each passed gate (default: ${String(d.soakSeconds)}).` },
      'health-grace-seconds': { type: 'string', arg: 'S', help: `Seconds healthy on the new version before an agent counts as updated (default: ${String(d.healthGraceSeconds)}).` },
      'min-healthy-ratio': { type: 'string', arg: 'R', help: `Share (0..1) of a phase that must succeed (default: ${String(d.minHealthyRatio)}).` },
      'max-failures': { type: 'string', arg: 'N', help: `Failures a phase may have (default: ${String(d.maxFailures)}).` },
      'deferral-window-seconds': { type: 'string', arg: 'S', help: `Seconds a busy agent may keep deferring (default: ${String(d.deferralWindowSeconds)}).` },
      'no-auto-rollback': { type: 'boolean', help: `Do not roll back the agents of a phase whose gate failed (default: ${d.autoRollback ? 'roll them back' : 'leave them'}).` },
    },
    run: startRollout,
  };
}

async function startRollout({ values, io }: CommandInput): Promise<CommandResult> {
  const client = await operatorClient(values, io, 'deploy-or-admin');
  const body: Record<string, unknown> = { source: 'drover-cli' };
  const version = optionalString(values, 'version');
  if (version !== undefined) body['version'] = version;
  const releaseFile = optionalString(values, 'release');
  if (releaseFile !== undefined) body['release'] = JSON.parse((await readInput(releaseFile, 'Release file')).toString('utf8')) as unknown;
  if (version === undefined && releaseFile === undefined) throw new CliError('USAGE_ERROR', 'Name what to roll out: --version V (or --release FILE).');
  const artifact = optionalString(values, 'artifact');
  if (artifact !== undefined) body['artifact'] = artifact;
  const strategy = optionalString(values, 'strategy');
  if (strategy !== undefined) {
    if (!['canary', 'immediate', 'manual'].includes(strategy)) throw new CliError('USAGE_ERROR', `--strategy is canary, immediate or manual; got "${strategy}".`);
    body['strategy'] = strategy;
  }
  const changelog = optionalString(values, 'changelog-file');
  if (changelog !== undefined) body['changelog'] = (await readInput(changelog, 'Changelog file')).toString('utf8');
  const commit = optionalString(values, 'commit-sha');
  if (commit !== undefined) body['commit_sha'] = commit;
  if (values['supersede'] === true) body['supersede'] = true;
  const rollout: Record<string, unknown> = {};
  const percentages = optionalString(values, 'percentages');
  if (percentages !== undefined) rollout['percentages'] = percentages.split(',').map((p) => Number(p.trim()));
  const numeric: [string, string, number, number][] = [
    ['max-in-flight', 'maxInFlight', 1, 1_000_000],
    ['soak-seconds', 'soakSeconds', 0, 30 * 86400],
    ['health-grace-seconds', 'healthGraceSeconds', 0, 86400],
    ['min-healthy-ratio', 'minHealthyRatio', 0, 1],
    ['max-failures', 'maxFailures', 0, 1_000_000],
    ['deferral-window-seconds', 'deferralWindowSeconds', 0, 30 * 86400],
  ];
  for (const [flag, key, min, max] of numeric) {
    const value = number(values, flag, min, max);
    if (value !== undefined) rollout[key] = value;
  }
  if (values['no-auto-rollback'] === true) rollout['autoRollback'] = false;
  if (Object.keys(rollout).length > 0) body['metadata'] = { rollout };
  const answer = (await client.json({ method: 'POST', path: '/manager/v1/updates/notify', json: body, retry: false })) as { deployment_id: string; status: string; message: string; agents_affected: number };
  return { data: camelCaseKeys(answer), text: `STARTED ${answer.deployment_id} (${answer.status}): ${answer.message}\nWatch it with: drover rollout watch ${answer.deployment_id}${connectionFlags(values)}` };
}

function statusText(s: StatusAnswer): string {
  const byState = new Map<string, number>();
  for (const agent of s.agents) byState.set(agent.state, (byState.get(agent.state) ?? 0) + 1);
  const lines = [
    `${s.deployment_id}  ${s.status}  ${s.strategy ?? '-'} ${s.version ?? ''}  phase ${s.canary_phase ?? '-'}`,
    s.message,
    `agents ${s.agents_total}: updated ${s.agents_updated}, failed ${s.agents_failed}, deferred ${s.agents_deferred}`,
    STATES.filter((state) => byState.has(state)).map((state) => `${state} ${byState.get(state) ?? 0}`).join(', '),
    // The code and its message: the same words as the agent_failed event for the same failure.
    ...s.agents.filter((a) => a.error).map((a) => `  ${a.agent_id} ${a.state} ${a.error?.code ?? ''}${a.error?.message === undefined || a.error.message === a.error.code ? '' : `: ${a.error.message}`}`),
    'latest events:',
    ...s.events.slice(-5).map((e) => `  ${e.timestamp} ${e.event_type}: ${e.message}`),
  ];
  return lines.join('\n');
}

export const rolloutStatusCommand: Command = {
  usage: '[DEPLOYMENT_ID] --manager URL',
  options: operatorOptions('admin-or-deploy'),
  arguments: ['[DEPLOYMENT_ID]'],
  async run({ values, positionals, io }) {
    const client = await operatorClient(values, io, 'admin-or-deploy');
    const id = positionals[0];
    const status = (await client.json({ method: 'GET', path: `/manager/v1/updates/status${id === undefined ? '' : `?deployment_id=${encodeURIComponent(id)}`}` })) as StatusAnswer | null;
    return { data: camelCaseKeys(status), text: status === null ? 'No deployment is active.' : statusText(status) };
  },
};

/** A phase's progress: `#` succeeded, `x` failed or rolled back, `-` skipped, `.` not ended; "no hosts" for an empty phase. */
function bar(c: Counts, width = 24): string {
  const total = Object.values(c).reduce<number>((sum, n) => sum + (n ?? 0), 0);
  if (total === 0) return `[${'no hosts'.padStart(16).padEnd(width)}] 0/0`;
  const ok = c['succeeded'] ?? 0;
  const bad = (c['failed'] ?? 0) + (c['rolled_back'] ?? 0);
  const skipped = c['skipped'] ?? 0;
  // Cells by cumulative share, so the parts never add up to more than the width.
  const upTo = (n: number): number => Math.round((n / total) * width);
  const okCells = upTo(ok);
  const badCells = upTo(ok + bad) - okCells;
  const skippedCells = upTo(ok + bad + skipped) - okCells - badCells;
  const cells = `${'#'.repeat(okCells)}${'x'.repeat(badCells)}${'-'.repeat(skippedCells)}`;
  return `[${cells.padEnd(width, '.')}] ${ok + bad + skipped}/${total}`;
}

/** One host's line in the live view. */
export type WatchedHost = StatusAnswer['agents'][number];

const HOSTS_SHOWN = 20; // host lines in one frame; the rest are counted
const FINAL_TARGET_STATES = new Set(['succeeded', 'failed', 'skipped', 'rolled_back']);

/** The hosts of a frame: those still moving first, then by phase and id; at most HOSTS_SHOWN lines. */
function hostLines(hosts: readonly WatchedHost[]): string[] {
  if (hosts.length === 0) return [];
  const sorted = [...hosts].sort((a, b) => Number(FINAL_TARGET_STATES.has(a.state)) - Number(FINAL_TARGET_STATES.has(b.state)) || (a.phase ?? '').localeCompare(b.phase ?? '') || a.agent_id.localeCompare(b.agent_id));
  const width = Math.min(40, Math.max(...sorted.map((h) => h.agent_id.length)));
  const lines = sorted.slice(0, HOSTS_SHOWN).map((h) => `  ${h.agent_id.padEnd(width)}  ${(h.phase ?? '-').padEnd(14)} ${h.state.padEnd(12)} ${h.error?.code ?? ''}`.trimEnd());
  if (sorted.length > HOSTS_SHOWN) lines.push(`  ... and ${String(sorted.length - HOSTS_SHOWN)} more`);
  return ['hosts:', ...lines, ''];
}

/**
 * One frame of the live view: the phase, counts per state, a progress bar per phase, each host's
 * state (when known), the latest events, and when it was drawn.
 */
export function watchFrame(summary: Summary, events: readonly { timestamp: string; event_type: string; message: string }[], hosts: readonly WatchedHost[] = [], drawnAt?: Date): string {
  return [
    `deployment ${summary.deployment_id}  ${summary.artifact} ${summary.version}  ${summary.strategy}  status ${summary.status}${drawnAt === undefined ? '' : `  (at ${drawnAt.toISOString().slice(11, 19)})`}`,
    `phase ${summary.canary_phase ?? '-'} (${summary.phase_state})  deferred so far: ${summary.agents_deferred}`,
    STATES.filter((s) => (summary.counts[s] ?? 0) > 0).map((s) => `${s} ${summary.counts[s] ?? 0}`).join('  '),
    '',
    ...summary.phases.map((p, i) => `${i === summary.phase_index ? '>' : ' '} ${p.name.padEnd(14)} ${bar(p.counts)}  ok ${p.counts['succeeded'] ?? 0} failed ${p.counts['failed'] ?? 0}`),
    '',
    ...hostLines(hosts),
    summary.message,
    '',
    ...events.slice(-8).map((e) => `${e.timestamp.slice(11, 19)} ${e.event_type}: ${e.message}`),
  ].join('\n');
}

/** A piped watch's line for a summary: status, phase, counts. */
function statusLine(summary: Summary, at: Date): string {
  const counts = STATES.filter((s) => (summary.counts[s] ?? 0) > 0).map((s) => `${s} ${summary.counts[s] ?? 0}`).join(', ');
  return `${at.toISOString().slice(11, 19)} status ${summary.status}, phase ${summary.canary_phase ?? '-'} (${summary.phase_state}): ${counts === '' ? 'no hosts' : counts}`;
}

/** Splits a server-sent event stream into events, across chunk boundaries. */
export function sseParser(onEvent: (type: string, data: string, id: string | undefined) => boolean): (text: string) => boolean {
  let buffer = '';
  return (text) => {
    // Normalised after joining: a CRLF may be split across two chunks.
    buffer = (buffer + text).replace(/\r\n/g, '\n');
    let index = buffer.indexOf('\n\n');
    while (index !== -1) {
      const block = buffer.slice(0, index);
      buffer = buffer.slice(index + 2);
      let type = 'message';
      let id: string | undefined;
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) type = line.slice(6).trim();
        else if (line.startsWith('id:')) id = line.slice(3).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
      }
      if (data.length > 0 && !onEvent(type, data.join('\n'), id)) return false;
      index = buffer.indexOf('\n\n');
    }
    return true;
  };
}

export const rolloutWatchCommand: Command = {
  usage: '[DEPLOYMENT_ID] --manager URL [--output frames|lines] [--interval SECONDS] [--json]',
  description:
    'Follows one deployment (the active one when no id is given) until it ends; exits 0 when it completed, 1\n' +
    'otherwise. On a terminal it redraws a frame every --interval seconds and at each change: phase, counts,\n' +
    'a progress bar per phase, each host\'s state and reason, the latest events. Piped, it prints plain lines\n' +
    '(each event, each change of status or phase) and the final frame at the end. --json prints each event of\n' +
    'the stream as a JSON line. Only this deployment\'s events are shown; a stream cut by a manager restart\n' +
    'resumes where it stopped.',
  options: {
    ...operatorOptions('admin-or-deploy'),
    output: { type: 'string', arg: 'frames|lines', help: 'frames (redrawn views) or lines (plain lines); default: frames on a terminal, lines when piped.' },
    interval: { type: 'string', arg: 'SECONDS', help: 'How often a frame is redrawn with each host\'s state (default 2, from 0.2 to 60).' },
  },
  arguments: ['[DEPLOYMENT_ID]'],
  async run({ values, positionals, io, json }) {
    const client = await operatorClient(values, io, 'admin-or-deploy');
    const output = optionalString(values, 'output') ?? (process.stdout.isTTY ? 'frames' : 'lines');
    if (output !== 'frames' && output !== 'lines') throw new CliError('USAGE_ERROR', `--output is frames or lines (got ${output.slice(0, 32)}).`);
    const intervalText = optionalString(values, 'interval') ?? '2';
    const intervalSeconds = Number(intervalText);
    if (!/^\d+(\.\d+)?$/.test(intervalText) || intervalSeconds < 0.2 || intervalSeconds > 60) throw new CliError('USAGE_ERROR', `--interval is a number of seconds from 0.2 to 60 (got ${intervalText.slice(0, 32)}).`);
    const statusPath = (deploymentId: string): string => `/manager/v1/updates/status?deployment_id=${encodeURIComponent(deploymentId)}`;
    // The deployment to follow: the one named, else the active one (so only its events are replayed).
    let id = positionals[0];
    if (id === undefined) {
      const active = (await client.json({ method: 'GET', path: '/manager/v1/updates/status' })) as StatusAnswer | null;
      if (active === null) return { data: null, text: 'No deployment is active. Name one: drover rollout watch DEPLOYMENT_ID (drover rollout list shows them).', exitCode: 1 };
      id = active.deployment_id;
    }
    const followed = id;
    const events: { timestamp: string; event_type: string; message: string }[] = [];
    let last: Summary | undefined;
    let hosts: WatchedHost[] = [];
    let lastLine = '';
    let lastEventId: string | undefined;
    const frames = !json && output === 'frames';
    const clear = frames && process.stdout.isTTY ? '\x1b[H\x1b[2J' : '';
    const draw = (): void => {
      if (frames && last !== undefined) io.stdout(`${clear}${watchFrame(last, events, hosts, new Date())}\n${clear === '' ? '\n' : ''}`);
    };
    const refreshHosts = async (): Promise<void> => {
      const answer = (await client.json({ method: 'GET', path: statusPath(followed) })) as StatusAnswer | null;
      if (answer !== null) hosts = answer.agents;
    };
    const parse = sseParser((type, data, eventId) => {
      if (eventId !== undefined) lastEventId = eventId;
      const value = JSON.parse(data) as Record<string, unknown>;
      if (json) io.stdout(`${JSON.stringify(camelCaseKeys({ type, ...value }))}\n`);
      if (type === 'deployment') {
        const event = value as unknown as (typeof events)[number];
        events.push(event);
        if (!json && output === 'lines') io.stdout(`${event.timestamp.slice(11, 19)} ${event.event_type}: ${event.message}\n`);
      }
      if (type === 'status') {
        last = value as unknown as Summary;
        if (!json && output === 'lines') {
          const line = statusLine(last, new Date());
          // The same status again (a heartbeat) prints nothing: the time is not part of the change.
          if (line.slice(9) !== lastLine.slice(9)) io.stdout(`${line}\n`);
          lastLine = line;
        }
        draw();
        if (FINAL_STATUSES.has(last.status)) return false;
      }
      return true;
    });
    // Frames are redrawn on a timer too, with each host's state: a rollout that soaks sends no event.
    let timer: NodeJS.Timeout | undefined;
    if (frames) {
      const tick = (): void => {
        timer = setTimeout(() => {
          void refreshHosts()
            .then(draw, () => undefined)
            .finally(tick);
        }, intervalSeconds * 1000);
        timer.unref();
      };
      await refreshHosts().catch(() => undefined);
      tick();
    }
    const path = `/manager/v1/updates/events?deployment_id=${encodeURIComponent(followed)}`;
    try {
      // A stream cut by a manager restart is resumed where it stopped (Last-Event-ID), a bounded number of times.
      for (let attempt = 0; ; attempt++) {
        try {
          await client.stream({ method: 'GET', path, headers: lastEventId === undefined ? {} : { 'last-event-id': lastEventId } }, parse);
        } catch (error) {
          if (!(error instanceof CliError) || error.code !== 'NETWORK_ERROR' || attempt >= WATCH_RECONNECTS) throw error;
        }
        if (last !== undefined && FINAL_STATUSES.has(last.status)) break;
        if (attempt >= WATCH_RECONNECTS) break;
        await sleep(WATCH_RECONNECT_MS);
      }
    } finally {
      clearTimeout(timer);
    }
    // The final picture, with each host's end state: redrawn on a terminal, once at the end when piped.
    if (frames && last !== undefined) {
      await refreshHosts().catch(() => undefined);
      draw();
    }
    if (!json && output === 'lines' && last !== undefined) {
      await refreshHosts().catch(() => undefined);
      io.stdout(`\n${watchFrame(last, events, hosts)}\n`);
    }
    return { data: camelCaseKeys(last ?? null), text: last === undefined ? 'The stream ended.' : `deployment ${last.deployment_id} ended: ${last.status}`, exitCode: last !== undefined && last.status !== 'completed' ? 1 : 0 };
  },
};

/** `rollout pause|resume|abort|promote|rollback DEPLOYMENT_ID`: one operator action on a deployment. */
export function rolloutActionCommand(action: 'pause' | 'resume' | 'abort' | 'promote' | 'rollback'): Command {
  return {
    usage: 'DEPLOYMENT_ID --manager URL [--reason TEXT]',
    options: { ...operatorOptions(), reason: { type: 'string', arg: 'TEXT', help: 'Recorded in the audit log and the deployment events.' } },
    arguments: ['<DEPLOYMENT_ID>'],
    async run({ values, positionals, io }) {
      const client = await operatorClient(values, io);
      const id = positionals[0] ?? '';
      const reason = optionalString(values, 'reason');
      const status = (await client.json({ method: 'POST', path: `/manager/v1/updates/${encodeURIComponent(id)}/${action}`, json: reason === undefined ? {} : { reason }, retry: false })) as StatusAnswer;
      return { data: camelCaseKeys(status), text: `${action.toUpperCase()} ${id}: ${status.status}\n${status.message}` };
    },
  };
}
