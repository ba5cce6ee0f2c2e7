// Credential rotation (decision 0032) with real processes: `drover manager start` and the built
// droverd, each SIGKILLed at every step of a rotation by its failpoints (droverd:
// credential:requesting, :received, :saved, :confirmed; the manager: credential:issued, right after
// committing the pending credential, and credential:promoted, right after making it current).
// After each kill the host, restarted, checks in again, ends up with one working credential, and
// the credential it held before the rotation is refused by the manager.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import type { TrustPolicyDocument } from '@drover/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drover, expectOk as ok } from '../helpers/cli.js';
import { DaemonProcess, createHostFor, destroyHost, droverd } from '../helpers/droverd.js';
import type { Host } from '../helpers/droverd.js';
import { ManagerProcess } from '../helpers/manager-process.js';
import { until } from '../helpers/wait.js';

interface StoredCredentials {
  agentId: string;
  credential: string;
  previousCredential?: string;
  credentialIssuedAt?: string;
  [key: string]: unknown;
}

describe('credential rotation survives a kill -9 of droverd or the manager at every step', () => {
  let root: string;
  let managerDir: string;
  let manager: ManagerProcess | undefined;
  let port: number;
  let host: Host;
  let agentId: string;
  let adminToken: string;
  const machineId = createHash('sha256').update(randomBytes(16)).digest('hex');
  const daemons: DaemonProcess[] = [];
  const cliEnv = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: tmpdir() };

  function theManager(): ManagerProcess {
    if (manager === undefined) throw new Error('the manager is not running');
    return manager;
  }

  const credentialsPath = (): string => join(host.stateDir, 'credentials.json');
  async function stored(): Promise<StoredCredentials> {
    return JSON.parse(await readFile(credentialsPath(), 'utf8')) as StoredCredentials;
  }

  /** Makes the host's credential due for rotation: issued long ago (as a day-old one would be). */
  async function makeDue(): Promise<StoredCredentials> {
    const credentials = await stored();
    expect(credentials.previousCredential).toBeUndefined();
    await writeFile(credentialsPath(), JSON.stringify({ ...credentials, credentialIssuedAt: '2000-01-01T00:00:00.000Z' }), { mode: 0o600 });
    return credentials;
  }

  /** What the manager answers to `credential` on an agent route that changes nothing (release metadata). */
  async function accepted(credential: string): Promise<boolean> {
    const response = await request(new URL('/v1/releases/latest?artifact=agent&platform=linux-x64', theManager().url), { headers: { authorization: `Bearer ${credential}` } });
    await response.body.dump();
    return response.statusCode !== 401;
  }

  async function lastCheckinAt(): Promise<number> {
    const answer = await theManager().call('GET', `/v1/agents/${agentId}`, { authorization: `Bearer ${adminToken}` });
    const at = (answer.json as { agent: { lastCheckinAt: string | null } }).agent.lastCheckinAt;
    return at === null ? 0 : Date.parse(at);
  }

  async function auditEvents(event: string): Promise<number> {
    const text = await readFile(join(managerDir, 'audit', 'audit.jsonl'), 'utf8');
    return text.trim().split('\n').filter((line) => (JSON.parse(line) as { event: string; agentId?: string }).event === event && line.includes(agentId)).length;
  }

  /** Runs droverd until it settles: a check-in recorded after `since`, one working credential kept, no previous one. */
  async function settle(since: number): Promise<StoredCredentials> {
    const daemon = new DaemonProcess(host);
    daemons.push(daemon);
    const settled = await until(
      async () => {
        if ((await lastCheckinAt()) <= since) return undefined;
        const credentials = await stored();
        return credentials.previousCredential === undefined && Date.parse(credentials.credentialIssuedAt ?? '2000-01-01') > since ? credentials : undefined;
      },
      30_000,
      'droverd to check in with a rotated credential and forget the previous one',
    );
    await daemon.stop();
    return settled;
  }

  async function startManager(env: Record<string, string> = {}): Promise<void> {
    manager = await ManagerProcess.start(managerDir, { ...cliEnv, ...env }, port);
  }

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'droverd-rotation-'));
    managerDir = join(root, 'm');
    ok(await drover(['keygen', '--out', join(root, 'keys'), '--name', 'release'], { env: cliEnv }), 'keygen');
    ok(await drover(['trust', 'create', '--pub', join(root, 'keys', 'release.pub'), '--out', join(root, 'trust.json')], { env: cliEnv }), 'trust create');
    const init = ok(await drover(['manager', 'init', '--dir', managerDir, '--trust', join(root, 'trust.json'), '--seats', '1', '--expires-in', '1h', '--json'], { env: cliEnv }), 'manager init');
    const { enrollmentToken } = JSON.parse(init.stdout) as { enrollmentToken: string };
    adminToken = (await readFile(join(managerDir, 'secrets', 'admin.token'), 'utf8')).trim();
    const configPath = join(managerDir, 'manager.json');
    const config = JSON.parse(await readFile(configPath, 'utf8')) as { settings: Record<string, unknown> };
    config.settings['checkinIntervalSeconds'] = 5;
    await writeFile(configPath, `${JSON.stringify(config, null, 2)}\n`);
    manager = await ManagerProcess.start(managerDir, cliEnv);
    port = Number(new URL(manager.url).port);
    host = await createHostFor(
      { url: manager.url, managerKey: await readFile(join(managerDir, 'keys', 'manager.key.pub'), 'utf8'), trustPolicy: JSON.parse(await readFile(join(root, 'trust.json'), 'utf8')) as TrustPolicyDocument },
      // Rotate a credential an hour old: only the one each step makes due rotates.
      { settings: { machineId, checkin: { backoffMaxSeconds: 1, credentialRotationHours: 1 } } },
    );
    const pinned = (await readFile(join(managerDir, 'keys', 'manager.key.pub'), 'utf8')).trim();
    const enrolled = ok(await droverd(host, ['enroll', '--manager', manager.url, '--token', enrollmentToken, '--manager-key', pinned, '--json']), 'droverd enroll');
    agentId = (JSON.parse(enrolled.stdout) as { agentId: string }).agentId;
  }, 60_000);

  afterAll(async () => {
    await destroyHost(host, daemons);
    await manager?.stop();
    await rm(root, { recursive: true, force: true });
  });

  it.each(['credential:requesting', 'credential:received', 'credential:saved', 'credential:confirmed'])(
    'droverd killed at %s: restarted, it checks in, rotates, and the credential it held before is refused',
    async (point) => {
      const before = await makeDue();
      const since = Date.now();
      const killed = new DaemonProcess(host, { DROVER_FAILPOINT: point });
      daemons.push(killed);
      expect(await killed.exited).toMatchObject({ signal: 'SIGKILL' });
      // Whatever the kill left, the file is whole and the host still holds a credential the manager takes.
      const left = await stored();
      expect(await accepted(left.credential)).toBe(true);
      expect((await stat(credentialsPath())).mode & 0o777).toBe(0o600);

      const after = await settle(since);
      expect(after.credential).not.toBe(before.credential);
      expect(await accepted(after.credential)).toBe(true);
      expect(await accepted(before.credential)).toBe(false);
    },
    60_000,
  );

  it('droverd goes back to its previous credential when the manager refuses the rotated one (a database restored from before the rotation)', async () => {
    const before = await makeDue();
    const since = Date.now();
    const killed = new DaemonProcess(host, { DROVER_FAILPOINT: 'credential:saved' });
    daemons.push(killed);
    expect(await killed.exited).toMatchObject({ signal: 'SIGKILL' });
    const left = await stored();
    expect(left.previousCredential).toBe(before.credential);
    // The manager forgets the pending credential: another one replaces it (and is thrown away).
    const replaced = await theManager().call('POST', `/v1/agents/${agentId}/credential`, { authorization: `Bearer ${before.credential}`, 'x-machine-id': machineId });
    expect(replaced.status).toBe(200);
    expect(await accepted(left.credential)).toBe(false);

    const daemon = new DaemonProcess(host);
    daemons.push(daemon);
    const reverted = await daemon.waitForLine((line) => line.event === 'credential.reverted', 20_000);
    expect(JSON.stringify(reverted)).not.toContain(left.credential);
    await until(async () => ((await lastCheckinAt()) > since ? true : undefined), 20_000, 'a check-in with the previous credential');
    await daemon.stop();
    const after = await stored();
    expect(after.credential).toBe(before.credential);
    expect(after.previousCredential).toBeUndefined();
    expect(await accepted(before.credential)).toBe(true);
  }, 60_000);

  it.each(['credential:issued', 'credential:promoted'])(
    'the manager killed at %s: restarted, the host checks in again and ends with one working credential',
    async (point) => {
      const before = await makeDue();
      const since = Date.now();
      await theManager().stop();
      await startManager({ DROVER_MANAGER_FAILPOINT: point });
      const dying = theManager();
      const daemon = new DaemonProcess(host);
      daemons.push(daemon);
      expect(await Promise.race([dying.exited, new Promise((resolve) => setTimeout(resolve, 30_000, 'still running'))])).toBeNull();
      await daemon.stop();
      await startManager();
      const after = await settle(since);
      expect(await accepted(after.credential)).toBe(true);
      expect(await accepted(before.credential)).toBe(false);
    },
    90_000,
  );

  it('records each rotation in the audit chain, which still verifies', async () => {
    // One issued per attempt that reached the manager, one rotation per completed step.
    expect(await auditEvents('agent.credential_rotated')).toBe(6);
    expect(await auditEvents('agent.credential_issued')).toBeGreaterThanOrEqual(6);
    const verified = await drover(['audit', 'verify', '--signers', join(managerDir, 'audit', 'signers.json'), join(managerDir, 'audit', 'audit.jsonl')], { env: cliEnv });
    expect(verified.code, verified.stderr).toBe(0);
    expect(verified.stdout).toMatch(/^VERIFIED \d+ records/);
  });
});
