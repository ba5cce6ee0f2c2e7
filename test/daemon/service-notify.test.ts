// droverd under `Type=notify` and `WatchdogSec=` (issue 17, decision 0029), against a real AF_UNIX
// datagram socket standing in for systemd's: droverd sends READY=1 once the agent it supervises has
// answered its health route and WATCHDOG=1 at about half of WATCHDOG_USEC from its event loop, each
// through the real systemd-notify. Node cannot bind a datagram socket,
// so python3 is the receiving end (it closes the descriptor systemd-notify's BARRIER=1 sends, as
// systemd does). Without python3 or systemd-notify these tests say why and skip (unless
// DROVER_REQUIRE_INTEROP=1).
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FakeManager } from '../fakes/fake-manager.js';
import { agentArtifact } from '../helpers/agent-artifact.js';
import { DaemonProcess, createHost, destroyHost, droverd, droverdBin, installAgent, waitForAgent } from '../helpers/droverd.js';
import type { Host } from '../helpers/droverd.js';
import { skipWhenMissing } from '../helpers/interop.js';
import { until } from '../helpers/wait.js';

const tools = ['python3', 'systemd-notify'].filter((tool) => spawnSync(tool, ['--version'], { encoding: 'utf8' }).status !== 0);
if (tools.length > 0) console.warn(`Skipping droverd's systemd notification tests: ${tools.join(' and ')} missing (apt-get install systemd python3).`);

const RECEIVER = `
import array, json, os, socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print(json.dumps({"listening": True}), flush=True)
while True:
    data, ancillary, _flags, _addr = s.recvmsg(4096, socket.CMSG_SPACE(64 * 4))
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds = array.array("i")
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
            for fd in fds:
                os.close(fd)
    print(json.dumps({"at": time.monotonic() * 1000, "message": data.decode()}), flush=True)
`;

/** The datagrams a python3 receiver bound at `path` got: each message with its arrival time (ms). */
class NotifySocket {
  readonly messages: { at: number; fields: Record<string, string> }[] = [];
  readonly child: ChildProcess;
  readonly listening: Promise<void>;

  constructor(readonly path: string) {
    this.child = spawn('python3', ['-c', RECEIVER, path], { stdio: ['ignore', 'pipe', 'inherit'] });
    if (this.child.stdout === null) throw new Error('python3 has no stdout pipe');
    const lines = createInterface({ input: this.child.stdout });
    this.listening = new Promise((resolve) => {
      lines.on('line', (line) => {
        const entry = JSON.parse(line) as { listening?: boolean; at: number; message: string };
        if (entry.listening === true) resolve();
        else this.messages.push({ at: entry.at, fields: Object.fromEntries(entry.message.split('\n').filter(Boolean).map((f) => [f.slice(0, f.indexOf('=')), f.slice(f.indexOf('=') + 1)])) });
      });
    });
  }

  with(field: string): { at: number; fields: Record<string, string> }[] {
    return this.messages.filter((m) => m.fields[field] !== undefined);
  }

  close(): void {
    this.child.kill('SIGKILL');
  }
}

describe.skipIf(skipWhenMissing(tools.length > 0))('droverd and systemd: READY=1 and WATCHDOG=1 through systemd-notify', () => {
  let manager: FakeManager;
  let host: Host;
  const daemons: DaemonProcess[] = [];
  const sockets: NotifySocket[] = [];

  beforeAll(async () => {
    manager = await FakeManager.start();
    host = await createHost(manager);
    await installAgent(host, manager, '1.0.0', await agentArtifact('1.0.0'));
  }, 30_000);

  afterEach(async () => {
    for (const daemon of daemons) await daemon.stop();
  });

  afterAll(async () => {
    await destroyHost(host, daemons);
    await manager.close();
    for (const socket of sockets) socket.close();
  });

  it('READY=1 once the agent answers healthy, WATCHDOG=1 every WATCHDOG_USEC/2 until droverd exits', async () => {
    const socket = new NotifySocket(join(host.dir, 'notify.sock'));
    sockets.push(socket);
    await socket.listening;
    const daemon = new DaemonProcess(host, { NOTIFY_SOCKET: socket.path, WATCHDOG_USEC: '2000000' });
    daemons.push(daemon);
    await waitForAgent(host, '1.0.0');
    const [ready] = await until(() => Promise.resolve(socket.with('READY').length > 0 ? socket.with('READY') : undefined), 20_000, 'READY=1');
    // The status droverd sends with READY=1 is what the agent answered on its health route.
    expect(ready?.fields).toEqual({ READY: '1', STATUS: 'supervising agent 1.0.0 (healthy)' });
    expect(daemon.lines.some((line) => line.event === 'agent.started')).toBe(true);
    // Watchdog pings from droverd's start (systemd's watchdog runs before READY=1 too), about every second.
    await until(() => Promise.resolve(socket.with('WATCHDOG').filter((m) => m.at > (ready?.at ?? Infinity)).length >= 6 ? true : undefined), 20_000, 'six WATCHDOG=1 after READY=1');
    const pings = socket.with('WATCHDOG').map((m) => m.at);
    const gaps = pings.slice(1).map((at, i) => at - (pings[i] ?? 0));
    const mean = gaps.reduce((a, b) => a + b, 0) / gaps.length;
    expect(mean).toBeGreaterThan(750);
    expect(mean).toBeLessThan(1_500);
    for (const gap of gaps) expect(gap).toBeLessThan(2_000); // below WATCHDOG_USEC: systemd would not have fired
    expect(socket.with('READY')).toHaveLength(1);
    const exit = await daemon.stop();
    expect(exit.code).toBe(0);
    // Pings end with droverd (a ping already running may still land), and it sends no STOPPING=1.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const count = socket.with('WATCHDOG').length;
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    expect(socket.with('WATCHDOG')).toHaveLength(count);
    expect(socket.with('STOPPING')).toEqual([]);
  }, 60_000);

  it('a hung event loop sends no WATCHDOG=1 (systemd would kill and restart droverd), and the pings resume after it', async () => {
    const socket = new NotifySocket(join(host.dir, 'notify-hang.sock'));
    sockets.push(socket);
    await socket.listening;
    // Preloaded into droverd's process: 4 s after its start, its event loop spins for 2.5 s.
    const hang = join(host.dir, 'hang.cjs');
    await writeFile(hang, 'setTimeout(() => { const end = Date.now() + 2500; while (Date.now() < end); }, 4000).unref();\n');
    const daemon = new DaemonProcess(host, { NOTIFY_SOCKET: socket.path, WATCHDOG_USEC: '1000000' }, ['--require', hang, droverdBin, 'run']);
    daemons.push(daemon);
    await until(() => Promise.resolve(socket.with('WATCHDOG').length >= 14 ? true : undefined), 30_000, 'pings after the hang');
    const pings = socket.with('WATCHDOG').map((m) => m.at);
    const gaps = pings.slice(1).map((at, i) => at - (pings[i] ?? 0));
    // One gap spans the hang: longer than WATCHDOG_USEC, which systemd would have answered with SIGABRT.
    const long = gaps.filter((gap) => gap > 2_000);
    expect(long).toHaveLength(1);
    expect(long[0]).toBeGreaterThanOrEqual(2_400);
    expect((await daemon.stop()).code).toBe(0);
  }, 60_000);

  it('a NOTIFY_SOCKET nobody listens on is logged once and never stops droverd', async () => {
    const daemon = new DaemonProcess(host, { NOTIFY_SOCKET: join(host.dir, 'nobody.sock'), WATCHDOG_USEC: '400000' });
    daemons.push(daemon);
    await waitForAgent(host, '1.0.0');
    await daemon.waitForLine((line) => line.event === 'notify.failed');
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(daemon.child.exitCode).toBeNull();
    expect(daemon.lines.filter((line) => line.event === 'notify.failed' && line.level === 'warn')).toHaveLength(1);
    const status = await droverd(host, ['status', '--json']);
    expect(JSON.parse(status.stdout)).toMatchObject({ daemon: { running: true } });
    expect((await daemon.stop()).code).toBe(0);
  }, 60_000);

  it('without NOTIFY_SOCKET, droverd runs no systemd-notify at all (WATCHDOG_USEC alone is ignored)', async () => {
    // A systemd-notify first on PATH that records each run.
    const bin = join(host.dir, 'spy-bin');
    await mkdir(bin, { recursive: true });
    await writeFile(join(bin, 'systemd-notify'), `#!/bin/sh\necho "$@" >> ${join(host.dir, 'spy.log')}\n`, { mode: 0o755 });
    const daemon = new DaemonProcess(host, { PATH: `${bin}:${process.env['PATH'] ?? ''}`, WATCHDOG_USEC: '400000' });
    daemons.push(daemon);
    await waitForAgent(host, '1.0.0');
    await new Promise((resolve) => setTimeout(resolve, 1_500)); // READY=1 and three pings, were they sent
    expect((await daemon.stop()).code).toBe(0);
    await expect(readFile(join(host.dir, 'spy.log'), 'utf8')).rejects.toThrow(/ENOENT/);
  }, 60_000);
});
