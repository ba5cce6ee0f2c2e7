// `drover rollout ...` (the built CLI, a real process) against a real manager and a simulated
// fleet: start, status, pause/resume, watch (live frames, and --json lines from the event stream).
import { afterEach, describe, expect, it } from 'vitest';
import { startTestManager } from '../../packages/manager/test/harness.js';
import type { TestManager } from '../../packages/manager/test/harness.js';
import { drover } from '../helpers/cli.js';
import { FleetSimulator, waitFor } from './fleet-simulator.js';

let manager: TestManager | undefined;
let fleet: FleetSimulator | undefined;
afterEach(async () => {
  await fleet?.close();
  await manager?.close();
  fleet = undefined;
  manager = undefined;
});

describe('drover rollout', () => {
  it('starts, shows, pauses, resumes and watches a rollout to its end', async () => {
    const m = await startTestManager({ rollout: { tickMs: 40 } });
    manager = m;
    await m.publish({ version: '1.0.0' });
    await m.publish({ version: '2.0.0' });
    const f = new FleetSimulator(m.url, { checkinEveryMs: 30 });
    fleet = f;
    await f.enroll(await m.createEnrollmentToken(5), Array.from({ length: 5 }, () => ({})));
    f.start();
    const env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', DROVER_MANAGER_URL: m.url, DROVER_ADMIN_TOKEN: m.adminToken, DROVER_DEPLOY_TOKEN: m.deployToken };
    const started = await drover(['rollout', 'start', '--version', '2.0.0', '--strategy', 'manual', '--percentages', '40,100', '--soak-seconds', '0.2', '--health-grace-seconds', '0.1', '--json'], { env });
    expect(started.code, started.stderr).toBe(0);
    // --json output is camelCase, though the deploy API answers with CIRIS's snake_case.
    const answer = JSON.parse(started.stdout) as Record<string, unknown>;
    expect(answer).toMatchObject({ deploymentId: expect.any(String) as unknown, agentsAffected: 5 });
    expect(Object.keys(answer).filter((key) => key.includes('_'))).toEqual([]);
    const id = answer['deploymentId'] as string;
    const again = await drover(['rollout', 'start', '--version', '2.0.0'], { env });
    expect([again.code, again.stderr]).toEqual([1, expect.stringContaining('DEPLOYMENT_ACTIVE')]);
    const status = await drover(['rollout', 'status', id], { env });
    expect(status.code).toBe(0);
    expect(status.stdout).toContain(`${id}  pending`);
    expect((await drover(['rollout', 'pause', id], { env })).stdout).toContain('PAUSE');
    // Pausing a paused deployment is a no-op, not an error.
    const pausedAgain = await drover(['rollout', 'pause', id], { env });
    expect([pausedAgain.code, pausedAgain.stdout]).toEqual([0, expect.stringContaining(`PAUSE ${id}: paused`)]);
    const refused = await drover(['rollout', 'promote', id, '--json'], { env });
    expect([refused.code, refused.stdout]).toEqual([1, expect.stringContaining('DEPLOYMENT_ACTION_INVALID')]);
    expect((await drover(['rollout', 'resume', id], { env })).code).toBe(0);
    expect((await drover(['rollout', 'promote', id, '--reason', 'looks good'], { env })).code).toBe(0);
    // Watch with --json until the first phase waits for promote, then promote from here.
    const watching = drover(['rollout', 'watch', id, '--json'], { env });
    // Frames on a timer, for the active deployment (no id given); plain lines when piped.
    const framing = drover(['rollout', 'watch', '--output', 'frames', '--interval', '0.3'], { env });
    const lining = drover(['rollout', 'watch', id], { env });
    // The manager's own status route says when; asked in-process, not through a CLI process per look.
    const promoteLater = (async () => {
      await waitFor('the second phase to wait for promote', async () => {
        const s = await m.request('GET', `/manager/v1/updates/status?deployment_id=${id}`, { headers: { authorization: `Bearer ${m.adminToken}` } });
        return s.text.includes('phase_awaiting_promote') ? true : undefined;
      }, 60_000);
      // Nothing happens while it waits: only the timer redraws the frames meanwhile.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      return drover(['rollout', 'promote', id], { env });
    })();
    expect((await promoteLater).code).toBe(0);
    const watched = await watching;
    expect(watched.code, watched.stderr).toBe(0);
    const lines = watched.stdout.trim().split('\n').filter((l) => l.startsWith('{"type"')).map((l) => JSON.parse(l) as { type: string; eventType?: string; status?: string });
    expect(lines.some((l) => l.type === 'deployment' && l.eventType === 'created')).toBe(true);
    expect(lines.some((l) => l.type === 'deployment' && l.eventType === 'completed')).toBe(true);
    expect(lines.at(-1)).toMatchObject({ type: 'status', status: 'completed', deploymentId: id, phaseState: expect.any(String) as unknown });
    // Targets per state keep the state names as keys: they are data, not field names.
    expect(lines.at(-1)).toMatchObject({ counts: { succeeded: 5 } });
    // The timer's frames while the rollout waited for promote, each host with its state.
    const framed = await framing;
    expect(framed.code, framed.stderr).toBe(0);
    const frames = framed.stdout.split(/^(?=deployment )/m).filter((frame) => frame.startsWith(`deployment ${id}`) && frame.includes('\nphase '));
    expect(frames.filter((frame) => frame.includes('(awaiting_promote)')).length).toBeGreaterThanOrEqual(3);
    const hostsShown = frames.at(-1)?.split('hosts:')[1] ?? '';
    for (const host of f.hosts) expect(hostsShown).toMatch(new RegExp(`${host.agentId} +\\S+ +succeeded`));
    // Piped: one line per event and per change, then the final frame.
    const lined = await lining;
    expect(lined.code, lined.stderr).toBe(0);
    expect(lined.stdout).toMatch(/^\d\d:\d\d:\d\d created: /m);
    expect(lined.stdout).toMatch(/^\d\d:\d\d:\d\d status completed, phase 100% \(done\): succeeded 5$/m);
    expect(lined.stdout.match(/^deployment .*status completed/gm)?.length).toBe(1);
    // The live view of an ended rollout: its frame with a full progress bar per phase.
    const view = await drover(['rollout', 'watch', id], { env });
    expect(view.code).toBe(0);
    expect(view.stdout).toContain('status completed');
    expect(view.stdout).toMatch(/40% +\[#{24}\] 2\/2/);
    expect(view.stdout).toMatch(/100% +\[#{24}\] 3\/3/);
    // Eight real drover processes and a rollout of three real phases: 11 s on a quiet machine, over 30 s when
    // two other suites share its two cores.
  }, 90_000);
});
