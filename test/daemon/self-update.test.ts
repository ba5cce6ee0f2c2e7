import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleDaemon } from '../../daemon/scripts/bundle.js';
import { FakeManager } from '../fakes/fake-manager.js';
import { agentArtifact } from '../helpers/agent-artifact.js';
import { run } from '../helpers/cli.js';
import { DaemonProcess, createHost, destroyHost, droverd, installAgent, waitForAgent } from '../helpers/droverd.js';
import type { Host } from '../helpers/droverd.js';

// droverd updates itself: the `daemon` artifact is a single-file bundle; systemd (played here by
// a restart loop) runs the launcher, which imports current/daemon. v1 -> v2 through droverd's own
// update command (the old droverd exits 75 after the swap); then a v3 that crashes at boot is
// rolled back by the launcher after 3 boots, and the v2 it goes back to reports the failure.

interface Boot {
  exit: { code: number | null; signal: NodeJS.Signals | null };
  version: string | undefined;
}

/** systemd's Restart=always, played: start the launcher, and start it again whenever it exits. */
class ServiceLoop {
  readonly boots: Boot[] = [];
  readonly processes: DaemonProcess[] = [];
  #stopped = false;
  #current: DaemonProcess | undefined;

  constructor(
    readonly host: Host,
    readonly launcher: string,
  ) {}

  start(): void {
    const daemon = new DaemonProcess(this.host, {}, [this.launcher, 'run']);
    this.#current = daemon;
    this.processes.push(daemon);
    void daemon.exited.then((exit) => {
      const started = daemon.lines.find((line) => line.event === 'daemon.started');
      this.boots.push({ exit, version: typeof started?.['version'] === 'string' ? started['version'] : undefined });
      // Restart=always with no RestartSec: the next boot as soon as this one has exited.
      if (!this.#stopped) setImmediate(() => { this.start(); });
    });
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#current?.stop();
  }
}

describe('droverd self-update through the launcher', () => {
  let manager: FakeManager;
  let host: Host;
  let bundles: string;
  let loop: ServiceLoop | undefined;
  const bundle = (version: string): string => join(bundles, version, 'droverd.mjs');

  beforeAll(async () => {
    bundles = await mkdtemp(join(tmpdir(), 'droverd-bundles-'));
    for (const version of ['1.0.0', '2.0.0', '3.0.0']) {
      await mkdir(join(bundles, version));
      await bundleDaemon({
        entry: 'bin',
        outfile: bundle(version),
        version,
        ...(version === '3.0.0' ? { prelude: "process.stderr.write('droverd 3.0.0: crashing at boot\\n'); process.exit(1);" } : {}),
      });
    }
    await bundleDaemon({ entry: 'launcher-main', outfile: join(bundles, 'launcher.mjs') });
    manager = await FakeManager.start();
    host = await createHost(manager);
    await installAgent(host, manager, '1.0.0', await agentArtifact('1.0.0'));
    // What install.sh does: the package's droverd bundle becomes current/daemon (unsigned: the package is the trust).
    const installed = await run(process.execPath, [bundle('1.0.0'), 'install', '--artifact', 'daemon', '--unsigned', '--version', '1.0.0', bundle('1.0.0')], { env: host.env });
    expect(installed.code, installed.stderr).toBe(0);
  }, 60_000);

  afterAll(async () => {
    await loop?.stop();
    await destroyHost(host, loop?.processes ?? []);
    await manager.close();
    await rm(bundles, { recursive: true, force: true });
  });

  const daemonVersionSeen = (version: string) => () => (manager.checkins.at(-1)?.headers['x-daemon-version'] === version ? true : undefined);

  it('v1 -> v2 through its own update command: swap, exit 75, the launcher boots v2, v2 commits at its first check-in', async () => {
    loop = new ServiceLoop(host, join(bundles, 'launcher.mjs'));
    loop.start();
    await waitForAgent(host, '1.0.0');
    await manager.waitFor(daemonVersionSeen('1.0.0'), 15_000, 'a check-in from droverd 1.0.0');
    const { commandId, nonce } = manager.queueUpdate({ artifact: 'daemon', version: '2.0.0', bytes: await readFile(bundle('2.0.0')), fileName: 'droverd.mjs' });
    const result = await manager.waitForResult(commandId, ['succeeded', 'failed', 'rolled_back', 'rejected'], 30_000);
    expect(result).toMatchObject({ outcome: 'succeeded', nonce });
    expect(loop.boots.some((boot) => boot.version === '1.0.0' && boot.exit.code === 75)).toBe(true);
    await manager.waitFor(daemonVersionSeen('2.0.0'), 10_000, 'a check-in from droverd 2.0.0');
    await waitForAgent(host, '1.0.0');
    const status = JSON.parse((await droverd(host, ['status', '--json'])).stdout) as { daemon: { installed: string } };
    expect(status.daemon.installed).toBe('2.0.0');
  }, 60_000);

  it('a v3 that crashes at boot is rolled back by the launcher after 3 boots; v2 reports DAEMON_BOOT_FAILED', async () => {
    const active = loop;
    if (active === undefined) throw new Error('the first test did not start the service loop');
    const { commandId, nonce } = manager.queueUpdate({ artifact: 'daemon', version: '3.0.0', bytes: await readFile(bundle('3.0.0')), fileName: 'droverd.mjs' });
    const result = await manager.waitForResult(commandId, ['succeeded', 'failed', 'rolled_back', 'rejected'], 45_000);
    expect(result).toMatchObject({ outcome: 'rolled_back', detail: { code: 'DAEMON_BOOT_FAILED' }, nonce });
    const crashes = active.processes.filter((p) => p.output.some((line) => line.includes('droverd 3.0.0: crashing at boot')));
    expect(crashes.length).toBe(3);
    expect(active.processes.some((p) => p.output.some((line) => line.includes('"event":"launcher.rollback"')))).toBe(true);
    await manager.waitFor(daemonVersionSeen('2.0.0'), 10_000, 'a check-in from droverd 2.0.0 again');
    await waitForAgent(host, '1.0.0');
    const status = JSON.parse((await droverd(host, ['status', '--json'])).stdout) as { daemon: { installed: string }; lastResult: { outcome: string } };
    expect(status.daemon.installed).toBe('2.0.0');
    expect(status.lastResult.outcome).toBe('rolled_back');
  }, 60_000);
});
