import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { TextfileMetrics } from './textfile-metrics.js';
import type { DaemonMetricsSnapshot } from './textfile-metrics.js';

let dir: string | undefined;
afterEach(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

const idle: DaemonMetricsSnapshot = { daemonVersion: '0.5.0', agentVersion: '1.0.0', update: undefined, lastResult: undefined, updateBoots: 0, startedAt: 1_767_000_000_000 };

describe('TextfileMetrics (droverd.prom)', () => {
  it('writes droverd.prom (0644, no temp file left) only when what it says changed, with the update step and the last result', async () => {
    dir = await mkdtemp(join(tmpdir(), 'droverd-textfile-'));
    const metrics = new TextfileMetrics(dir);
    expect(await metrics.write(idle)).toBe(true);
    expect(await metrics.write(idle)).toBe(false);
    expect((await stat(metrics.path)).mode & 0o777).toBe(0o644);
    const first = await readFile(metrics.path, 'utf8');
    expect(first).toContain('droverd_info{daemon_version="0.5.0",agent_version="1.0.0"} 1\n');
    expect(first).toContain('droverd_update_in_progress 0\n');
    expect(first).not.toContain('droverd_update_step{');
    expect(first).toContain('droverd_last_update_timestamp_seconds 0\n');

    const busy: DaemonMetricsSnapshot = { ...idle, update: { artifact: 'agent', step: 'deferred', deferrals: 2 }, lastResult: { artifact: 'agent', outcome: 'rolled_back', code: 'HEALTH_CHECK_FAILED', at: 1_767_000_100_000 } };
    expect(await metrics.write(busy)).toBe(true);
    const second = await readFile(metrics.path, 'utf8');
    expect(second).toContain('droverd_update_step{artifact="agent",step="deferred"} 1\n');
    expect(second).toContain('droverd_update_deferrals 2\n');
    expect(second).toContain('droverd_last_update_result{artifact="agent",outcome="rolled_back",code="HEALTH_CHECK_FAILED"} 1\n');
    expect(second).toContain('droverd_last_update_timestamp_seconds 1767000100\n');
    // Only droverd.prom: the temp file was renamed into place.
    expect(await readdir(dir)).toEqual(['droverd.prom']);
  });

  it('escapes a version that holds a quote or a backslash, so the file still parses', async () => {
    dir = await mkdtemp(join(tmpdir(), 'droverd-textfile-'));
    const metrics = new TextfileMetrics(dir);
    await metrics.write({ ...idle, agentVersion: 'a"b\\c' });
    expect(await readFile(metrics.path, 'utf8')).toContain('agent_version="a\\"b\\\\c"} 1\n');
  });
});
