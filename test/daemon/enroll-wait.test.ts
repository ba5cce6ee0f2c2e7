// A host provisioned before its manager is up (decision 0050): a real `droverd run` configured to
// enroll, its manager's port still closed, is refused and waits with backoff instead of exiting; a
// real `drover manager start` then comes up on that port with a one-seat enrollment token, and the
// daemon enrolls with it and checks in. The refused attempts spent nothing: the one seat is used
// once, by the enrollment that reached the manager.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Ed25519PrivateKey, trustPolicyDocument } from '@drover/protocol';
import { DaemonProcess, createHostFor, destroyHost } from '../helpers/droverd.js';
import type { Host } from '../helpers/droverd.js';
import { ManagerProcess, initManagerDir } from '../helpers/manager-process.js';
import { freePort } from '../helpers/ports.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('droverd run before its manager is up', () => {
  it('is refused, waits with backoff (enroll.retry), enrolls once the manager listens, checks in; the one seat is spent once', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'drover-enroll-wait-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const env: NodeJS.ProcessEnv = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: dir };
    const releaseKey = Ed25519PrivateKey.generate();
    const managerDir = join(dir, 'manager');
    const { enrollmentToken, adminToken } = await initManagerDir(managerDir, releaseKey, env, { checkinIntervalSeconds: 5 }, 1);
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const host: Host = await createHostFor(
      { url, managerKey: await readFile(join(managerDir, 'keys', 'manager.key.pub'), 'utf8'), enrollmentToken, trustPolicy: trustPolicyDocument([releaseKey.publicKey]) },
      { settings: { machineId: createHash('sha256').update(randomBytes(16)).digest('hex') } },
    );
    const daemon = new DaemonProcess(host);
    cleanups.push(() => destroyHost(host, [daemon]));

    // Refused twice (about 0.5-1 s, then 1-2 s later), and still running.
    await daemon.waitForLine((line) => line.event === 'enroll.retry' && line['attempt'] === 2, 20_000);
    expect(daemon.child.exitCode).toBeNull();
    const retries = daemon.lines.filter((line) => line.event === 'enroll.retry');
    expect(retries.map((line) => [line['reason'], line['level']])).toContainEqual(['ECONNREFUSED', 'warn']);
    expect(daemon.output.join('\n')).not.toContain(enrollmentToken);

    const manager = await ManagerProcess.start(managerDir, env, port);
    cleanups.push(() => manager.stop());
    const done = await daemon.waitForLine((line) => line.event === 'enroll.done', 40_000);
    const agentId = String(done['agentId']);
    const admin = { authorization: `Bearer ${adminToken}` };
    // Its credential works: the manager records a check-in.
    for (let i = 0; i < 100; i++) {
      const view = await manager.call('GET', `/v1/agents/${agentId}`, admin);
      if ((view.json as { agent?: { lastCheckinAt?: string | null } }).agent?.lastCheckinAt != null) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect((await manager.call('GET', `/v1/agents/${agentId}`, admin)).json).toMatchObject({ agent: { agentId, lastCheckinAt: expect.any(String) as unknown } });
    const tokens = (await manager.call('GET', '/v1/enrollment-tokens', admin)).json as { tokens: { seats: number; used: number }[] };
    expect(tokens.tokens.map((t) => [t.seats, t.used])).toEqual([[1, 1]]);
    expect(daemon.child.exitCode).toBeNull();
  }, 90_000);
});
