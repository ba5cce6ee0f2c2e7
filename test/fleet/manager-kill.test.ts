// SIGKILL the manager (`drover manager start`, a real process) at three points of a canary
// rollout and start it again each time: the rollout completes, every target ends in a final
// state, and no host receives two different update commands for the same deployment (the
// transition and the command it sends are one transaction; timers are stored timestamps).
import { spawn } from 'node:child_process';
import type { ChildProcessByStdio } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { Pool } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ed25519PrivateKey } from '@drover/protocol';
import type { DeploymentStatus } from '@drover/protocol';
import { drover, droverBin } from '../helpers/cli.js';
import { initManagerDir, publishRandomRelease } from '../helpers/manager-process.js';
import { FleetSimulator, waitFor } from './fleet-simulator.js';

interface ManagerProcess {
  child: ChildProcessByStdio<null, Readable, Readable>;
  url: string;
  exited: Promise<number | null>;
}

let dir: string;
const running = new Set<ManagerProcess>();
const env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: tmpdir() };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'drover-rollout-kill-'));
});
afterAll(async () => {
  for (const m of running) m.child.kill('SIGKILL');
  await Promise.all([...running].map((m) => m.exited));
  await rm(dir, { recursive: true, force: true });
});

function startManager(): Promise<ManagerProcess> {
  const child = spawn(process.execPath, [droverBin, 'manager', 'start', '--dir', join(dir, 'm'), '--port', '0'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const exited = new Promise<number | null>((resolve) => {
    child.on('exit', (code) => {
      resolve(code);
    });
  });
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
  return waitFor('the manager to listen', () => {
    const line = out.split('\n').find((l) => l.includes('"manager.listening"'));
    if (line === undefined) return undefined;
    const m: ManagerProcess = { child, url: (JSON.parse(line) as { url: string }).url, exited };
    running.add(m);
    void exited.then(() => running.delete(m));
    return m;
  }, 15_000);
}

async function kill(m: ManagerProcess): Promise<void> {
  m.child.kill('SIGKILL');
  await m.exited;
}

async function http(url: string, method: 'GET' | 'POST' | 'PUT', path: string, token: string, body?: unknown, raw?: Uint8Array): Promise<{ status: number; json: unknown }> {
  const pool = new Pool(url, { connections: 1, headersTimeout: 10_000, bodyTimeout: 10_000 });
  try {
    const headers: Record<string, string> = { authorization: `Bearer ${token}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (raw !== undefined) headers['content-type'] = 'application/octet-stream';
    const res = await pool.request({ method, path, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : raw !== undefined ? { body: raw } : {}) });
    const text = await res.body.text();
    return { status: res.statusCode, json: text === '' ? undefined : (JSON.parse(text) as unknown) };
  } finally {
    await pool.close();
  }
}

describe('a manager killed mid-rollout', () => {
  it('resumes after SIGKILL at three points; the rollout completes and no host gets two different commands', async () => {
    const releaseKey = Ed25519PrivateKey.generate();
    const { enrollmentToken, adminToken, deployToken } = await initManagerDir(join(dir, 'm'), releaseKey, env, { rolloutTickMs: 50 });

    let manager = await startManager();
    for (const version of ['1.0.0', '2.0.0']) await publishRandomRelease(manager.url, deployToken, releaseKey, version);
    const fleet = new FleetSimulator(manager.url, { checkinEveryMs: 30 });
    try {
      await fleet.enroll(enrollmentToken, Array.from({ length: 10 }, () => ({ installMs: 100 })));
      fleet.start();
      const notified = await http(manager.url, 'POST', '/manager/v1/updates/notify', deployToken, {
        version: '2.0.0',
        strategy: 'canary',
        metadata: { rollout: { soakSeconds: 0.6, healthGraceSeconds: 0.3, targetDeadlineSeconds: 30 } },
      });
      expect(notified.status).toBe(200);
      const id = (notified.json as { deployment_id: string }).deployment_id;
      const status = async (): Promise<DeploymentStatus | undefined> => {
        const res = await http(manager.url, 'GET', `/manager/v1/updates/status?deployment_id=${id}`, adminToken).catch(() => undefined);
        return res?.status === 200 ? (res.json as DeploymentStatus) : undefined;
      };
      const restart = async (): Promise<void> => {
        await kill(manager);
        manager = await startManager();
        await fleet.retarget(manager.url);
      };
      // 1. Right after the notification: the first phase's command may or may not be out.
      await restart();
      // 2. In the soak after the first gate passed.
      await waitFor('the first gate', async () => ((await status())?.events.some((e) => e.event_type === 'phase_passed') === true ? true : undefined), 20_000);
      await restart();
      // 3. While the last phase's hosts are updating.
      await waitFor('the last phase to start', async () => ((await status())?.canary_phase === '100%' && (await status())?.agents.some((a) => a.phase === '100%' && a.state !== 'pending') === true ? true : undefined), 20_000);
      await restart();
      const final = await waitFor('the rollout to complete', async () => {
        const s = await status();
        return s?.completed_at !== null && s !== undefined ? s : undefined;
      }, 30_000);
      expect(final.status).toBe('completed');
      expect(final.agents.every((a) => ['succeeded', 'failed', 'skipped', 'rolled_back'].includes(a.state))).toBe(true);
      expect(final.agents_updated).toBe(10);
      for (const host of fleet.hosts) {
        const ids = new Set(host.received.filter((c) => c.deploymentId === id).map((c) => c.id));
        expect(ids.size).toBe(1);
        expect(host.version).toBe('2.0.0');
      }
      const verified = await drover(['audit', 'verify', '--signers', join(dir, 'm', 'audit', 'signers.json'), join(dir, 'm', 'audit', 'audit.jsonl')], { env });
      expect([verified.code, verified.stdout]).toEqual([0, expect.stringMatching(/^VERIFIED \d+ records/)]);
    } finally {
      await fleet.close();
      await kill(manager);
    }
  }, 90_000);
});
