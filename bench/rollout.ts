// Rollout bench: `drover manager start` as a real process, 10,000 simulated daemons (the fleet
// simulator of test/fleet, speaking the real check-in protocol over HTTP) that install at once and
// report healthy, a canary 10% -> 30% -> 100% with zero soak and zero grace. Prints one JSON line:
// wall time from notify to completion, the manager's CPU seconds and peak RSS (from /proc).
// Target: wall time at most 60 s on this machine.
import { spawn } from 'node:child_process';
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
const CLK_TCK = 100; // kernel clock ticks per second in /proc/<pid>/stat (USER_HZ on Linux)

async function procStats(pid: number): Promise<{ cpuSeconds: number; peakRssMiB: number }> {
  const stat = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]?.split(' ') ?? [];
  // Fields after the command: state is index 0, utime index 11, stime index 12.
  const cpuSeconds = (Number(stat[11]) + Number(stat[12])) / CLK_TCK;
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const hwm = /VmHWM:\s+(\d+) kB/.exec(status)?.[1];
  return { cpuSeconds, peakRssMiB: Math.round(Number(hwm) / 1024) };
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'drover-bench-rollout-'));
  const env: Record<string, string> = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: tmpdir() };
  // BENCH_MANAGER_NODE_ARGS='--cpu-prof --cpu-prof-dir=DIR' profiles the manager process.
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
  await writeFile(configPath, JSON.stringify(config));
  const deployToken = (await readFile(join(dir, 'm', 'secrets', 'deploy.token'), 'utf8')).trim();
  const adminToken = (await readFile(join(dir, 'm', 'secrets', 'admin.token'), 'utf8')).trim();

  const child = spawn(process.execPath, [...nodeArgs, droverBin, 'manager', 'start', '--dir', join(dir, 'm'), '--port', '0'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
  child.stderr.on('data', (c: Buffer) => (out += c.toString('utf8')));
  const hosts: SimulatedHost[] = [];
  try {
    let url: string | undefined;
    for (let i = 0; i < 300 && url === undefined; i++) {
      const line = out.split('\n').find((l) => l.includes('"manager.listening"'));
      if (line !== undefined) url = (JSON.parse(line) as { url: string }).url;
      else await sleep(50);
    }
    if (url === undefined) throw new Error(`the manager did not start:\n${out}`);
    const pool = new Pool(url, { connections: 64, pipelining: 1, headersTimeout: 60_000, bodyTimeout: 60_000 });
    const call = async (method: 'GET' | 'POST' | 'PUT', path: string, token: string, body?: unknown, raw?: Uint8Array): Promise<{ status: number; json: unknown }> => {
      const headers: Record<string, string> = { authorization: `Bearer ${token}` };
      if (body !== undefined) headers['content-type'] = 'application/json';
      if (raw !== undefined) headers['content-type'] = 'application/octet-stream';
      const res = await pool.request({ method, path, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : raw !== undefined ? { body: raw } : {}) });
      const text = await res.body.text();
      return { status: res.statusCode, json: text === '' ? undefined : (JSON.parse(text) as unknown) };
    };
    for (const version of ['1.0.0', '2.0.0']) {
      const bytes = randomBytes(1024);
      const payload = createReleasePayload({ artifact: 'agent', version, platform: 'linux-x64', file: { name: 'agent.tgz', size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') } });
      const registered = await call('POST', '/v1/releases', deployToken, { release: signRelease(payload, [releaseKey]) });
      await call('PUT', (registered.json as { uploadUrl: string }).uploadUrl, deployToken, undefined, bytes);
    }

    const enrollStarted = Date.now();
    for (let i = 0; i < AGENTS; i++) hosts.push(new SimulatedHost(`host-${i}`, {}, '1.0.0'));
    for (let i = 0; i < hosts.length; i += 64) await Promise.all(hosts.slice(i, i + 64).map((h) => h.enroll(pool, enrollmentToken)));
    const enrollSeconds = (Date.now() - enrollStarted) / 1000;
    // Spread the first check-ins over one interval, as a real fleet's are.
    for (const host of hosts) {
      setTimeout(() => {
        host.start(() => pool, CHECKIN_EVERY_MS);
      }, Math.random() * CHECKIN_EVERY_MS).unref();
    }
    await sleep(CHECKIN_EVERY_MS);
    const before = await procStats(child.pid ?? 0);

    const started = Date.now();
    const notified = await call('POST', '/manager/v1/updates/notify', deployToken, {
      version: '2.0.0',
      strategy: 'canary',
      metadata: { rollout: { percentages: [10, 30, 100], soakSeconds: 0, healthGraceSeconds: 0, maxInFlight: AGENTS } },
    });
    if (notified.status !== 200) throw new Error(JSON.stringify(notified.json));
    const id = (notified.json as { deployment_id: string }).deployment_id;
    let final: { status: string; agents_updated: number; completed_at: string | null } | undefined;
    while (Date.now() - started < 600_000) {
      await sleep(1000);
      const s = (await call('GET', `/manager/v1/updates/status?deployment_id=${id}`, adminToken)).json as { status: string; agents_updated: number; completed_at: string | null };
      if (s.completed_at !== null) {
        final = s;
        break;
      }
    }
    const wallSeconds = (Date.now() - started) / 1000;
    const after = await procStats(child.pid ?? 0);
    await Promise.all(hosts.map((h) => h.stop()));
    await pool.close();
    process.stdout.write(
      `${JSON.stringify({
        bench: 'rollout',
        agents: AGENTS,
        phases: [10, 30, 100],
        checkinEveryMs: CHECKIN_EVERY_MS,
        status: final?.status ?? 'timeout',
        agentsUpdated: final?.agents_updated ?? null,
        wallSeconds,
        managerCpuSeconds: Math.round((after.cpuSeconds - before.cpuSeconds) * 100) / 100,
        managerCpuSecondsTotal: after.cpuSeconds,
        managerPeakRssMiB: after.peakRssMiB,
        enrollSeconds,
        targetSeconds: 60,
        withinTarget: final?.status === 'completed' && wallSeconds <= 60,
      })}\n`,
    );
  } finally {
    for (const host of hosts) void host.stop();
    child.kill(nodeArgs.length === 0 ? 'SIGKILL' : 'SIGTERM');
    await exited;
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
