// Rollout bench: `drover manager start` as a real process and 10,000 simulated daemons (the fleet
// simulator of test/fleet, speaking the real check-in protocol over HTTP) that install at once and
// report healthy; a canary 10% -> 30% -> 100% with zero soak and zero grace, twice in one run:
//
// 1. check-ins only (every BENCH_CHECKIN_MS, 2 s): `checkinOnlyWallSeconds`, notify to completed;
// 2. on the command channel (decision 0041: every host holds its check-in, as droverd does):
//    `wallSeconds`, with the manager's RSS with every channel open and what one held check-in costs;
// 3. the manager restarted (SIGTERM, started again on the same port) under the 10,000 held
//    channels: how the fleet comes back (`reconnect`: seconds until every channel is held again,
//    the peak check-ins per second the fleet sent, check-ins shed with 503).
//
// Prints one JSON line. Targets (issue 16): `wallSeconds` under 10 on this 2-core machine.
// Needs `npm run build` first (the manager is the built CLI). BENCH_AGENTS (10000),
// BENCH_CHECKIN_MS (2000), BENCH_MANAGER_NODE_ARGS ('--cpu-prof --cpu-prof-dir=DIR' profiles it).
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';
import { Ed25519PrivateKey, createReleasePayload, signRelease, trustPolicyDocument } from '@drover/protocol';
import { SimulatedHost } from '../test/fleet/fleet-simulator.js';
import { droverBin, run } from '../test/helpers/cli.js';

const AGENTS = Number(process.env['BENCH_AGENTS'] ?? 10_000);
const CHECKIN_EVERY_MS = Number(process.env['BENCH_CHECKIN_MS'] ?? 2000);
// BENCH_PASSES: which of the three passes to run (default all; e.g. `channel` alone while tuning).
const PASSES = new Set((process.env['BENCH_PASSES'] ?? 'checkin-only,channel,restart').split(',').map((p) => p.trim()));
const CHANNEL_WAIT_SECONDS = 50; // droverd's default checkin.channelWaitSeconds
const CLK_TCK = 100; // kernel clock ticks per second in /proc/<pid>/stat (USER_HZ on Linux)

async function procStats(pid: number): Promise<{ cpuSeconds: number; rssMiB: number; peakRssMiB: number }> {
  const stat = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]?.split(' ') ?? [];
  // Fields after the command: state is index 0, utime index 11, stime index 12.
  const cpuSeconds = (Number(stat[11]) + Number(stat[12])) / CLK_TCK;
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string): number => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1]);
  return { cpuSeconds, rssMiB: Math.round(kib('VmRSS') / 1024), peakRssMiB: Math.round(kib('VmHWM') / 1024) };
}

const round = (n: number, places = 2): number => Math.round(n * 10 ** places) / 10 ** places;
const benchStarted = Date.now();
/** Where the bench is, on stderr (stdout carries the JSON line only). */
const progress = (what: string): void => {
  process.stderr.write(`[${((Date.now() - benchStarted) / 1000).toFixed(1)} s] ${what}\n`);
};

interface Manager {
  child: ChildProcess;
  exited: Promise<unknown>;
  url: string;
  /** What it printed (warnings and errors: the bench runs it at logLevel warn). */
  output: () => string;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'drover-bench-rollout-'));
  const env: Record<string, string> = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: tmpdir() };
  const nodeArgs = (process.env['BENCH_MANAGER_NODE_ARGS'] ?? '').split(' ').filter((a) => a !== '');
  const releaseKey = Ed25519PrivateKey.generate();
  await writeFile(join(dir, 'trust.json'), JSON.stringify(trustPolicyDocument([releaseKey.publicKey])));
  const init = await run(process.execPath, [droverBin, 'manager', 'init', '--dir', join(dir, 'm'), '--trust', join(dir, 'trust.json'), '--seats', String(AGENTS), '--expires-in', '1h', '--json'], { env });
  if (init.code !== 0) throw new Error(init.stderr);
  const enrollmentToken = (JSON.parse(init.stdout) as { enrollmentToken: string }).enrollmentToken;
  const configPath = join(dir, 'm', 'manager.json');
  const config = JSON.parse(await readFile(configPath, 'utf8')) as { settings: Record<string, unknown>; logLevel: string };
  config.settings['rolloutTickMs'] = 250;
  config.logLevel = 'warn';
  // BENCH_ADMISSION='{"retryAfterSeconds":1}' tries the manager's admission settings (decision 0027).
  if (process.env['BENCH_ADMISSION'] !== undefined) (config as Record<string, unknown>)['admission'] = JSON.parse(process.env['BENCH_ADMISSION']) as unknown;
  await writeFile(configPath, JSON.stringify(config));
  const deployToken = (await readFile(join(dir, 'm', 'secrets', 'deploy.token'), 'utf8')).trim();
  const adminToken = (await readFile(join(dir, 'm', 'secrets', 'admin.token'), 'utf8')).trim();

  const startManager = async (port: number): Promise<Manager> => {
    const child = spawn(process.execPath, [...nodeArgs, droverBin, 'manager', 'start', '--dir', join(dir, 'm'), '--port', String(port)], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (out += c.toString('utf8')));
    for (let i = 0; i < 600; i++) {
      const line = out.split('\n').find((l) => l.includes('"manager.listening"'));
      if (line !== undefined) return { child, exited, url: (JSON.parse(line) as { url: string }).url, output: () => out };
      await sleep(50);
    }
    child.kill('SIGKILL');
    throw new Error(`the manager did not start:\n${out}`);
  };

  let manager = await startManager(0);
  const hosts: SimulatedHost[] = [];
  // Check-ins share 64 connections; held check-ins need one each.
  const checkinPool = new Pool(manager.url, { connections: 64, pipelining: 1, headersTimeout: 60_000, bodyTimeout: 60_000 });
  const channelPool = new Pool(manager.url, { headersTimeout: (CHANNEL_WAIT_SECONDS + 15) * 1000, bodyTimeout: 60_000 });
  // Operator calls wait behind a saturated check-in path (10,000 hosts every 2 s fill this 2-core machine): minutes, not 60 s.
  const api = new Pool(manager.url, { connections: 4, headersTimeout: 300_000, bodyTimeout: 300_000 });
  try {
    const call = async (method: 'GET' | 'POST' | 'PUT', path: string, token: string, body?: unknown, raw?: Uint8Array): Promise<{ status: number; json: unknown; text: string }> => {
      const headers: Record<string, string> = { authorization: `Bearer ${token}` };
      if (body !== undefined) headers['content-type'] = 'application/json';
      if (raw !== undefined) headers['content-type'] = 'application/octet-stream';
      let res = await api.request({ method, path, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : raw !== undefined ? { body: raw } : {}) });
      // Shed (503 OVERLOADED, nothing done): asked again after Retry-After, as the CLI would be.
      for (let attempt = 0; res.statusCode === 503 && attempt < 10; attempt++) {
        await res.body.dump();
        await sleep(Number(res.headers['retry-after'] ?? 1) * 1000);
        res = await api.request({ method, path, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : raw !== undefined ? { body: raw } : {}) });
      }
      const text = await res.body.text();
      const json = res.headers['content-type']?.toString().startsWith('application/json') === true && text !== '' ? (JSON.parse(text) as unknown) : undefined;
      return { status: res.statusCode, json, text };
    };
    /** A sample of the manager's metrics (GET /metrics with the admin token). */
    const metric = async (name: string): Promise<number> => {
      const text = (await call('GET', '/metrics', adminToken)).text;
      // A counter never incremented is not exposed: 0.
      return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
    };
    const allHeld = async (what: string, timeoutMs: number): Promise<void> => {
      const end = Date.now() + timeoutMs;
      while ((await metric('drover_channel_held')) < AGENTS) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${await metric('drover_channel_held')} of ${AGENTS} held`);
        await sleep(100);
      }
    };
    for (const version of ['1.0.0', '2.0.0', '3.0.0']) {
      const bytes = randomBytes(1024);
      const payload = createReleasePayload({ artifact: 'agent', version, platform: 'linux-x64', file: { name: 'agent.tgz', size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') } });
      const registered = await call('POST', '/v1/releases', deployToken, { release: signRelease(payload, [releaseKey]) });
      await call('PUT', (registered.json as { uploadUrl: string }).uploadUrl, deployToken, undefined, bytes);
    }

    progress(`enrolling ${AGENTS} simulated hosts`);
    const enrollStarted = Date.now();
    for (let i = 0; i < AGENTS; i++) hosts.push(new SimulatedHost(`host-${i}`, {}, '1.0.0'));
    for (let i = 0; i < hosts.length; i += 64) await Promise.all(hosts.slice(i, i + 64).map((h) => h.enroll(checkinPool, enrollmentToken)));
    const enrollSeconds = (Date.now() - enrollStarted) / 1000;

    /** Every host starts within one interval (as a real fleet's first check-ins spread). */
    const startFleet = (pool: () => Pool): void => {
      for (const host of hosts) {
        setTimeout(() => {
          host.start(pool, CHECKIN_EVERY_MS);
        }, Math.random() * CHECKIN_EVERY_MS).unref();
      }
    };
    /** notify -> completed: seconds, the final status and the manager's CPU seconds over it. */
    const rollout = async (version: string): Promise<{ seconds: number; status: string; updated: number | null; cpuSeconds: number; timeline: string[]; shed503: number; received?: Record<string, number> }> => {
      const before = await procStats(manager.child.pid ?? 0);
      const shedBefore = hosts.reduce((n, h) => n + h.unavailable, 0);
      const started = Date.now();
      const notified = await call('POST', '/manager/v1/updates/notify', deployToken, {
        version,
        strategy: 'canary',
        metadata: { rollout: { percentages: [10, 30, 100], soakSeconds: 0, healthGraceSeconds: 0, maxInFlight: AGENTS } },
      });
      if (notified.status !== 200) throw new Error(notified.text);
      const id = (notified.json as { deployment_id: string }).deployment_id;
      progress(`notified: ${id}`);
      // Phase and phase state as the listing showed them (polled every 100 ms), with the seconds since notify.
      const timeline: string[] = [];
      while (Date.now() - started < 600_000) {
        await sleep(100);
        // The listing is light (no targets); the wall time is the manager's own completedAt.
        const answer = await call('GET', '/v1/deployments?limit=1', adminToken);
        if (answer.status !== 200) throw new Error(`GET /v1/deployments: ${answer.status} ${answer.text}`);
        const listed = answer.json as { deployments: { deploymentId: string; completedAt: string | null; phase: number; phaseState: string }[] };
        const newest = listed.deployments[0];
        const where = `${newest?.phase ?? '?'}:${newest?.phaseState ?? '?'}`;
        if (newest?.deploymentId === id && timeline.at(-1)?.split('@')[0] !== where) timeline.push(`${where}@${round((Date.now() - started) / 1000, 1)}`);
        if (newest?.deploymentId === id && newest.completedAt !== null) {
          const seconds = (Date.parse(newest.completedAt) - started) / 1000;
          const after = await procStats(manager.child.pid ?? 0);
          const s = (await call('GET', `/manager/v1/updates/status?deployment_id=${id}`, adminToken)).json as { status: string; agents_updated: number };
          const shed503 = hosts.reduce((n, h) => n + h.unavailable, 0) - shedBefore;
          // When the hosts got their command, in seconds since notify: where a slow rollout waits.
          const receivedAt = hosts.flatMap((h) => h.received.filter((c) => c.deploymentId === id).map((c) => (c.receivedAt - started) / 1000)).sort((a, b) => a - b);
          const at = (q: number): number => round(receivedAt[Math.min(receivedAt.length - 1, Math.floor(q * receivedAt.length))] ?? Number.NaN, 1);
          const received = { p10: at(0.1), p40: at(0.4), p50: at(0.5), p90: at(0.9), p99: at(0.99), last: at(1) };
          return { seconds, status: s.status, updated: s.agents_updated, cpuSeconds: round(after.cpuSeconds - before.cpuSeconds), timeline, shed503, received };
        }
      }
      return { seconds: (Date.now() - started) / 1000, status: 'timeout', updated: null, cpuSeconds: Number.NaN, timeline, shed503: Number.NaN };
    };

    // 1. Check-ins only.
    let checkinOnly: Awaited<ReturnType<typeof rollout>> | undefined;
    let checkinOnlyRss: number | undefined;
    if (PASSES.has('checkin-only')) {
      progress('rollout 1: check-ins only');
      startFleet(() => checkinPool);
      await sleep(CHECKIN_EVERY_MS * 2);
      checkinOnlyRss = (await procStats(manager.child.pid ?? 0)).rssMiB;
      checkinOnly = await rollout('2.0.0');
      await Promise.all(hosts.map((h) => h.stop()));
    }

    // 2. The channel: every host holds its check-in.
    progress('opening the channels');
    for (const host of hosts) host.channelWaitSeconds = CHANNEL_WAIT_SECONDS;
    const channelOpenStarted = Date.now();
    startFleet(() => channelPool);
    await allHeld('every channel to open', 120_000);
    const channelOpenSeconds = (Date.now() - channelOpenStarted) / 1000;
    await sleep(2_000);
    const heldRss = (await procStats(manager.child.pid ?? 0)).rssMiB;
    progress('rollout 2: on the channel');
    const channel = await rollout('3.0.0');
    const afterChannel = await procStats(manager.child.pid ?? 0);

    // 3. A restart under every channel held: SIGTERM lets the held check-ins go; the same port again.
    let reconnect: Record<string, number> | undefined;
    if (PASSES.has('restart')) {
      await allHeld('every channel to be held again after the rollout', 120_000);
      for (const host of hosts) {
        host.recordSends = true;
        host.unavailable = 0;
      }
      progress('restarting the manager under the held channels');
      const port = Number(new URL(manager.url).port);
      const stopAt = Date.now();
      manager.child.kill('SIGTERM');
      await manager.exited;
      const downAt = Date.now();
      manager = await startManager(port);
      const upAt = Date.now();
      // The pools keep their origin (the same URL): new connections reach the new process.
      await allHeld('every channel to be held again after the restart', 180_000);
      const backAt = Date.now();
      const shed = hosts.reduce((n, h) => n + h.unavailable, 0);
      const sends = hosts.flatMap((h) => h.sends.filter((t) => t >= upAt)).sort((a, b) => a - b);
      let peak = 0;
      for (let i = 0, j = 0; i < sends.length; i++) {
        while ((sends[i] ?? 0) - (sends[j] ?? 0) >= 1000) j++;
        peak = Math.max(peak, i - j + 1);
      }
      reconnect = {
        stopSeconds: round((downAt - stopAt) / 1000),
        startSeconds: round((upAt - downAt) / 1000),
        allHeldAfterStartSeconds: round((backAt - upAt) / 1000),
        checkinsSent: sends.length,
        checkinsSentWhileDown: hosts.reduce((n, h) => n + h.sends.filter((t) => t >= stopAt && t < upAt).length, 0),
        peakCheckinsPerSecond: peak,
        shed503: shed,
      };
    }
    await Promise.all(hosts.map((h) => h.stop()));

    process.stdout.write(
      `${JSON.stringify({
        bench: 'rollout',
        agents: AGENTS,
        phases: [10, 30, 100],
        checkinEveryMs: CHECKIN_EVERY_MS,
        status: channel.status,
        agentsUpdated: channel.updated,
        wallSeconds: channel.seconds,
        checkinOnlyStatus: checkinOnly?.status ?? null,
        checkinOnlyWallSeconds: checkinOnly?.seconds ?? null,
        timeline: channel.timeline,
        checkinOnlyTimeline: checkinOnly?.timeline ?? null,
        shed503: channel.shed503,
        commandReceivedSeconds: channel.received,
        checkinOnlyCommandReceivedSeconds: checkinOnly?.received ?? null,
        checkinOnlyShed503: checkinOnly?.shed503 ?? null,
        managerCpuSeconds: channel.cpuSeconds,
        checkinOnlyManagerCpuSeconds: checkinOnly?.cpuSeconds ?? null,
        channelOpenSeconds,
        managerRssMiB: { checkinOnly: checkinOnlyRss ?? null, channelsHeld: heldRss, peak: afterChannel.peakRssMiB },
        heldChannelKiB: checkinOnlyRss === undefined ? null : round(((heldRss - checkinOnlyRss) * 1024) / AGENTS, 1),
        reconnect: reconnect ?? null,
        enrollSeconds,
        targetSeconds: 10,
        withinTarget: channel.status === 'completed' && channel.seconds < 10,
      })}\n`,
    );
  } catch (error) {
    process.stderr.write(`the manager's last lines:\n${manager.output().split('\n').slice(-15).join('\n')}\n`);
    throw error;
  } finally {
    for (const host of hosts) void host.stop();
    await Promise.all([checkinPool.destroy(), channelPool.destroy(), api.destroy()]).catch(() => undefined);
    manager.child.kill(nodeArgs.length === 0 ? 'SIGKILL' : 'SIGTERM');
    await manager.exited;
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
