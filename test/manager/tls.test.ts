// The manager serving HTTPS itself (issue 13): `drover manager start --tls-cert --tls-key` with a
// certificate for 127.0.0.1 signed by a private CA that the real `openssl` makes here. The CLI and
// droverd trust the CA through NODE_EXTRA_CA_CERTS and work over HTTPS; without it they refuse the
// certificate. A key others may read, a key that does not go with the certificate, an expired
// certificate and half the flags stop the start with a code, before the manager listens.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import type { TrustPolicyDocument } from '@drover/protocol';
import { Ed25519PrivateKey } from '@drover/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadManagerTls } from '../../packages/manager/src/server/tls.js';
import { drover, droverBin } from '../helpers/cli.js';
import { DaemonProcess, createHostFor, destroyHost, droverd } from '../helpers/droverd.js';
import type { Host } from '../helpers/droverd.js';
import { skipWhenMissing } from '../helpers/interop.js';
import { ManagerProcess, initManagerDir } from '../helpers/manager-process.js';
import { until } from '../helpers/wait.js';

const hasOpenssl = ((): boolean => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
if (!hasOpenssl) console.warn('Skipping the manager TLS suite: openssl is not on PATH (apt-get install openssl).');

let dir = '';
const env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: tmpdir() };
const running = new Set<ManagerProcess>();
const at = (...parts: string[]): string => join(dir, ...parts);
const openssl = (...args: string[]): void => {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
};

beforeAll(async () => {
  if (!hasOpenssl) return;
  dir = await mkdtemp(join(tmpdir(), 'drover-tls-'));
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=drover test CA');
  openssl('req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1');
  await writeFile(at('san.ext'), 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n');
  openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '1', '-extfile', 'san.ext');
  await chmod(at('server.key'), 0o600);
  await chmod(at('ca.key'), 0o600);
}, 60_000);

afterAll(async () => {
  await Promise.all([...running].map((m) => m.stop(2_000)));
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

describe.skipIf(skipWhenMissing(!hasOpenssl))('drover manager start --tls-cert --tls-key', () => {
  it('serves HTTPS: the CLI and droverd trusting the CA work, without it they refuse the certificate', async () => {
    const releaseKey = Ed25519PrivateKey.generate();
    const { enrollmentToken } = await initManagerDir(at('m'), releaseKey, env, { checkinIntervalSeconds: 5 });
    const manager = await ManagerProcess.spawn([droverBin, 'manager', 'start', '--dir', at('m'), '--port', '0', '--tls-cert', at('server.pem'), '--tls-key', at('server.key')], env);
    running.add(manager);
    expect(manager.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const trusting = { ...env, NODE_EXTRA_CA_CERTS: at('ca.pem') };

    const listed = await drover(['agents', 'list', '--manager', manager.url, '--token-file', at('m', 'secrets', 'admin.token'), '--json'], { env: trusting });
    expect(listed.code, listed.stderr).toBe(0);
    const refused = await drover(['agents', 'list', '--manager', manager.url, '--token-file', at('m', 'secrets', 'admin.token')], { env });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/NETWORK_ERROR.*UNABLE_TO_VERIFY_LEAF_SIGNATURE.*not trusted.*NODE_EXTRA_CA_CERTS/);

    // A host enrolls and checks in over HTTPS.
    let host: Host | undefined;
    const daemons: DaemonProcess[] = [];
    try {
      host = await createHostFor(
        { url: manager.url, managerKey: await readFile(at('m', 'keys', 'manager.key.pub'), 'utf8'), trustPolicy: JSON.parse(await readFile(`${at('m')}.trust.json`, 'utf8')) as TrustPolicyDocument },
        { settings: { machineId: createHash('sha256').update(randomBytes(16)).digest('hex'), checkin: { backoffMaxSeconds: 1 } } },
      );
      const pinned = (await readFile(at('m', 'keys', 'manager.key.pub'), 'utf8')).trim();
      const enrolled = await droverd(host, ['enroll', '--manager', manager.url, '--token', enrollmentToken, '--manager-key', pinned, '--json'], { NODE_EXTRA_CA_CERTS: at('ca.pem') });
      expect(enrolled.code, enrolled.stderr).toBe(0);
      const agentId = (JSON.parse(enrolled.stdout) as { agentId: string }).agentId;
      const daemon = new DaemonProcess(host, { NODE_EXTRA_CA_CERTS: at('ca.pem') });
      daemons.push(daemon);
      const adminToken = (await readFile(at('m', 'secrets', 'admin.token'), 'utf8')).trim();
      await until(
        async () => {
          const view = await drover(['agents', 'list', '--manager', manager.url, '--token-file', at('m', 'secrets', 'admin.token'), '--json'], { env: trusting });
          const agent = (JSON.parse(view.stdout) as { agents: { agentId: string; lastCheckinAt: string | null }[] }).agents.find((a) => a.agentId === agentId);
          return agent?.lastCheckinAt !== null && agent?.lastCheckinAt !== undefined ? true : undefined;
        },
        20_000,
        'a check-in over HTTPS',
      );
      expect(adminToken).not.toBe('');
    } finally {
      if (host !== undefined) await destroyHost(host, daemons);
    }
    expect(await manager.stop()).toBe(0);
  }, 90_000);

  it('closes a TLS connection over the connection cap before its handshake, and serves those under it', async () => {
    const configPath = at('m', 'manager.json');
    const config = JSON.parse(await readFile(configPath, 'utf8')) as Record<string, unknown>;
    await writeFile(configPath, JSON.stringify({ ...config, admission: { maxConnections: 2 } }));
    const manager = await ManagerProcess.spawn([droverBin, 'manager', 'start', '--dir', at('m'), '--port', '0', '--tls-cert', at('server.pem'), '--tls-key', at('server.key')], env);
    running.add(manager);
    const { port } = new URL(manager.url);
    const held = [connect(Number(port), '127.0.0.1'), connect(Number(port), '127.0.0.1')];
    try {
      await Promise.all(held.map((socket) => new Promise((resolve) => socket.once('connect', resolve))));
      // Two plain TCP connections, no handshake: the third is over the cap and closed at once.
      const third = tlsConnect({ port: Number(port), host: '127.0.0.1', ca: await readFile(at('ca.pem')) });
      const outcome = await new Promise<string>((resolve) => {
        third.once('secureConnect', () => { resolve('handshake'); });
        third.once('error', (error: NodeJS.ErrnoException) => { resolve(error.code ?? 'error'); });
        third.once('close', () => { resolve('closed'); });
      });
      third.destroy();
      expect(outcome).not.toBe('handshake');
    } finally {
      for (const socket of held) socket.destroy();
    }
    // Once they are gone, a client is served.
    const listed = await until(async () => {
      const answer = await drover(['agents', 'list', '--manager', manager.url, '--token-file', at('m', 'secrets', 'admin.token'), '--json'], { env: { ...env, NODE_EXTRA_CA_CERTS: at('ca.pem') } });
      return answer.code === 0 ? answer : undefined;
    }, 10_000, 'a request under the cap');
    expect(listed.code).toBe(0);
    expect(await manager.stop()).toBe(0);
    await writeFile(configPath, JSON.stringify(config));
  }, 60_000);

  it('refuses to start with half the flags, a key others may read, or a key of another certificate', async () => {
    const half = await drover(['manager', 'start', '--dir', at('m'), '--port', '0', '--tls-cert', at('server.pem')], { env });
    expect([half.code, half.stderr]).toEqual([2, expect.stringContaining('--tls-cert and --tls-key go together')]);
    await chmod(at('server.key'), 0o644);
    const open = await drover(['manager', 'start', '--dir', at('m'), '--port', '0', '--tls-cert', at('server.pem'), '--tls-key', at('server.key')], { env });
    expect(open.code).not.toBe(0);
    expect(open.stderr).toContain('TLS_INVALID');
    expect(open.stderr).toContain('chmod 600');
    await chmod(at('server.key'), 0o600);
    const other = await drover(['manager', 'start', '--dir', at('m'), '--port', '0', '--tls-cert', at('server.pem'), '--tls-key', at('ca.key')], { env });
    expect(other.code).not.toBe(0);
    expect(other.stderr).toMatch(/TLS_INVALID.*does not go with the certificate/);
    // An expired certificate, seen from three days on.
    await expect(loadManagerTls(at('server.pem'), at('server.key'), new Date(Date.now() + 3 * 86_400_000))).rejects.toMatchObject({ code: 'TLS_INVALID', message: expect.stringContaining('expired') as unknown });
    await expect(loadManagerTls(at('ca.pem'), at('no-such.key'))).rejects.toMatchObject({ code: 'TLS_INVALID' });
  }, 60_000);
});
