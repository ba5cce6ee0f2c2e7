// The key-rotation ceremony of docs/operations.md ("Rotating a release signing key" and the audit
// key), end to end with a real manager (`drover manager init` + `start`) and two real droverd hosts,
// each step followed by an update the hosts actually install:
//   0. every trust policy holds the old release key only; v1 (old key) is installed;
//   1. releases are signed with both keys: hosts on the old policy update to v2;
//   2. the policy with both keys goes to the hosts and the manager (restarted): v3 (both) updates;
//   3. the policy with the new key only goes out, and the audit key is replaced at the same restart:
//      v4 (new key only) updates every host; v5 signed by the old key alone is refused by the manager
//      and by a host; the audit log, signed by two keys across the restart, verifies.
// Twice: with every key in a file, and moving into a SoftHSM2 token, as a fleet leaving key files
// does: the new release key is an Ed25519 key made in the token (`keygen --pkcs11`), and the new
// audit key an RSA key in the token (AUDIT_SIGNING_KEY_SOURCE=pkcs11, rsa-sha256). The token run
// skips without SoftHSM2, unless DROVER_REQUIRE_SOFTHSM=1 (CI).
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TrustPolicyDocument, UpdateCommand } from '@drover/protocol';
import { afterAll, beforeAll, describe, expect, it as vitestIt } from 'vitest';
import { agentArtifact } from '../helpers/agent-artifact.js';
import { drover, expectOk as ok } from '../helpers/cli.js';
import type { RunResult } from '../helpers/cli.js';
import { DaemonProcess, createHostFor, destroyHost, droverd, waitForAgent } from '../helpers/droverd.js';
import type { Host } from '../helpers/droverd.js';
import { ManagerProcess } from '../helpers/manager-process.js';
import { createSoftHsm, skipWithoutSoftHsm } from '../helpers/softhsm.js';
import type { SoftHsm } from '../helpers/softhsm.js';
import { until } from '../helpers/wait.js';

const platform = `${process.platform}-${process.arch}`;
const HOSTS = 2;

const variants = [
  { name: 'in key files', token: false, skip: false },
  { name: 'moving into a SoftHSM2 token', token: true, skip: skipWithoutSoftHsm('the key rotation ceremony with token keys') },
];

describe.each(variants)('the release and audit key rotation ceremony $name, with real droverd hosts updating at every step', ({ token, skip }) => {
  let root: string;
  let managerDir: string;
  let manager: ManagerProcess | undefined;
  let adminToken: string;
  let deployToken: string;
  const hosts: Host[] = [];
  const daemons: DaemonProcess[] = [];
  const agentIds: string[] = [];
  const cliEnv: Record<string, string> = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: tmpdir() };
  /** The manager's environment at each (re)start: the audit key's source once it moved into the token. */
  let managerEnv: Record<string, string> = cliEnv;
  let hsm: SoftHsm | undefined;
  /** The pkcs11: URI of each key in the token, by name. */
  const inToken = new Map<string, string>();
  const at = (...parts: string[]): string => join(root, ...parts);
  const cli = (args: string[], env: Record<string, string> = {}): Promise<RunResult> => drover(args, { env: { ...cliEnv, ...env } });
  const admin = (): Record<string, string> => ({ authorization: `Bearer ${adminToken}` });
  const it = skip ? vitestIt.skip : vitestIt;

  function theManager(): ManagerProcess {
    if (manager === undefined) throw new Error('the manager is not running');
    return manager;
  }

  async function signedRelease(version: string, keys: string[]): Promise<string> {
    const file = at('rel', version, 'agent.cjs');
    await mkdir(at('rel', version), { recursive: true });
    await writeFile(file, await agentArtifact(version));
    const keyArgs = keys.flatMap((name) => ['--key', inToken.get(name) ?? at('keys', `${name}.key`)]);
    ok(await cli(['release', 'sign', ...keyArgs, '--artifact', 'agent', '--version', version, '--platform', platform, '--expires-in', '1d', file]), `release sign ${version}`);
    return file;
  }

  function publish(file: string): Promise<RunResult> {
    return cli(['release', 'publish', '--manager', theManager().url, file], { DROVER_DEPLOY_TOKEN: deployToken });
  }

  async function trustPolicy(name: string, keys: string[]): Promise<TrustPolicyDocument> {
    ok(await cli(['trust', 'create', ...keys.flatMap((k) => ['--pub', at('keys', `${k}.pub`)]), '--threshold', '1', '--out', at(`${name}.json`)]), `trust create ${name}`);
    return JSON.parse(await readFile(at(`${name}.json`), 'utf8')) as TrustPolicyDocument;
  }

  /** Steps 2 and 3: the policy on every host (droverd reads it afresh for each update) and on the manager, restarted on its port. */
  async function installPolicy(name: string, beforeRestart?: () => Promise<void>): Promise<void> {
    const text = await readFile(at(`${name}.json`), 'utf8');
    for (const host of hosts) await writeFile(join(host.stateDir, 'trust.json'), text);
    await writeFile(join(managerDir, 'trust.json'), text);
    const port = Number(new URL(theManager().url).port);
    await theManager().stop();
    manager = undefined;
    await beforeRestart?.();
    manager = await ManagerProcess.start(managerDir, managerEnv, port);
  }

  /** Publishes `file` and updates every host to `version` through the operator API; each outcome as the manager records it. */
  async function updateAll(version: string, file: string): Promise<void> {
    const published = await publish(file);
    expect([published.code, published.stdout], published.stderr).toEqual([0, expect.stringContaining(`PUBLISHED agent ${version}`)]);
    const commands: UpdateCommand[] = [];
    for (const agentId of agentIds) {
      const queued = await theManager().call('POST', `/v1/agents/${agentId}/commands`, admin(), { artifact: 'agent', version, deploymentId: `rotation-${version}`, drainTimeoutSeconds: 10 });
      expect(queued.status, JSON.stringify(queued.json)).toBe(201);
      commands.push(queued.json as UpdateCommand);
    }
    for (const [i, command] of commands.entries()) {
      const recorded = await theManager().finalOutcome(agentIds[i] ?? '', command.id, adminToken, 60_000);
      expect(recorded.outcome, JSON.stringify(recorded)).toBe('succeeded');
    }
    for (const host of hosts) await waitForAgent(host, version);
  }

  beforeAll(async () => {
    if (skip) return;
    root = await mkdtemp(join(tmpdir(), 'drover-rotation-'));
    managerDir = at('m');
    ok(await cli(['keygen', '--out', at('keys'), '--name', 'release']), 'keygen release (old)');
    if (token) {
      hsm = await createSoftHsm();
      cliEnv['SOFTHSM2_CONF'] = hsm.env['SOFTHSM2_CONF'] ?? '';
      const slot = await hsm.initToken('rotation');
      inToken.set('release-2026', hsm.uri(slot, 'release-2026'));
      inToken.set('audit-rsa', hsm.uri(slot, 'audit-rsa'));
      // The new release key is made in the token; only its public key files reach the disk.
      ok(await cli(['keygen', '--pkcs11', inToken.get('release-2026') ?? '', '--out', at('keys'), '--name', 'release-2026']), 'keygen --pkcs11 release-2026 (new)');
    } else ok(await cli(['keygen', '--out', at('keys'), '--name', 'release-2026']), 'keygen release-2026 (new)');
    const oldPolicy = await trustPolicy('trust-old', ['release']);
    await trustPolicy('trust-both', ['release', 'release-2026']);
    await trustPolicy('trust-new', ['release-2026']);
    const init = ok(await cli(['manager', 'init', '--dir', managerDir, '--trust', at('trust-old.json'), '--seats', String(HOSTS), '--expires-in', '1h', '--json']), 'manager init');
    const { enrollmentToken } = JSON.parse(init.stdout) as { enrollmentToken: string };
    adminToken = (await readFile(join(managerDir, 'secrets', 'admin.token'), 'utf8')).trim();
    deployToken = (await readFile(join(managerDir, 'secrets', 'deploy.token'), 'utf8')).trim();
    const configPath = join(managerDir, 'manager.json');
    const config = JSON.parse(await readFile(configPath, 'utf8')) as { settings: Record<string, unknown> };
    config.settings['checkinIntervalSeconds'] = 5;
    await writeFile(configPath, `${JSON.stringify(config, null, 2)}\n`);
    manager = await ManagerProcess.start(managerDir, cliEnv);

    // Step 0: v1, signed by the old key, installed on each host as a provisioning step does; each
    // host enrolls by itself with the enrollment token and checks in with a short backoff.
    const v1 = await signedRelease('1.0.0', ['release']);
    const managerKey = await readFile(join(managerDir, 'keys', 'manager.key.pub'), 'utf8');
    for (let i = 0; i < HOSTS; i += 1) {
      const host = await createHostFor({ url: manager.url, managerKey, enrollmentToken, trustPolicy: oldPolicy }, { settings: { machineId: createHash('sha256').update(randomBytes(16)).digest('hex'), checkin: { backoffMaxSeconds: 2 } } });
      hosts.push(host);
      ok(await droverd(host, ['install', '--release', `${v1}.release.json`, v1, '--json']), `droverd install 1.0.0 on host ${i + 1}`);
      daemons.push(new DaemonProcess(host));
    }
    for (const host of hosts) await waitForAgent(host, '1.0.0');
    const listed = await until(
      async () => {
        const answer = await theManager().call('GET', '/v1/agents?limit=10', admin());
        const agents = (answer.json as { agents: { agentId: string; lastCheckinAt: string | null }[] }).agents;
        return agents.length === HOSTS && agents.every((a) => a.lastCheckinAt !== null) ? agents : undefined;
      },
      30_000,
      'both hosts enrolled and checked in',
      // (each host its own machine id: two hosts on one machine would otherwise be one agent)
    );
    agentIds.push(...listed.map((a) => a.agentId));
  }, 120_000);

  afterAll(async () => {
    if (skip) return;
    for (const host of hosts) await destroyHost(host, daemons);
    await manager?.stop();
    await hsm?.cleanup();
    await rm(root, { recursive: true, force: true });
  });

  it('step 1: a release signed with the old and the new key updates hosts that trust only the old one', async () => {
    await updateAll('2.0.0', await signedRelease('2.0.0', ['release', 'release-2026']));
  }, 120_000);

  it('step 2: with both keys in every policy (hosts and the restarted manager), a release signed by both updates every host', async () => {
    await installPolicy('trust-both');
    await updateAll('3.0.0', await signedRelease('3.0.0', ['release', 'release-2026']));
  }, 120_000);

  it('step 3: the new key alone: its releases update every host, the old key alone is refused by the manager and by a host; the audit key rotated at the same restart, the log verifies', async () => {
    const audit = join(managerDir, 'audit');
    const signersBefore = JSON.parse(await readFile(join(audit, 'signers.json'), 'utf8')) as { signers: { kid: string }[] };
    await installPolicy('trust-new', async () => {
      if (token) {
        // The audit key's rotation into the token: an RSA key made there, named by the manager's environment.
        const uri = inToken.get('audit-rsa') ?? '';
        ok(await cli(['keygen', '--pkcs11', uri, '--algorithm', 'rsa-sha256', '--out', at('audit-new'), '--name', 'audit-rsa']), 'keygen --pkcs11 audit-rsa (new)');
        managerEnv = { ...cliEnv, AUDIT_SIGNING_KEY_SOURCE: 'pkcs11', AUDIT_SIGNING_PKCS11_URI: uri, AUDIT_SIGNING_ALG: 'rsa-sha256' };
        return;
      }
      // The audit key's rotation: a new Ed25519 key in place of the old, mode 0600, while the manager is stopped.
      ok(await cli(['keygen', '--out', at('audit-new'), '--name', 'audit']), 'keygen audit (new)');
      await chmod(at('audit-new', 'audit.key'), 0o600);
      await rename(at('audit-new', 'audit.key'), join(managerDir, 'keys', 'audit.key'));
    });
    await updateAll('4.0.0', await signedRelease('4.0.0', ['release-2026']));

    // The retired key alone: the manager refuses to publish, a host refuses to install, nothing changes.
    const v5 = await signedRelease('5.0.0', ['release']);
    const refused = await publish(v5);
    expect(refused.code).not.toBe(0);
    expect(`${refused.stdout}${refused.stderr}`, `${refused.stdout}${refused.stderr}`).toMatch(/RELEASE_UNTRUSTED_SIGNER/);
    const host = hosts[0];
    if (host === undefined) throw new Error('no host');
    // droverd install takes the host's state lock: with its daemon stopped, as an operator would.
    await daemons[0]?.stop(); // host 1's daemon, started first
    const installed = await droverd(host, ['install', '--release', `${v5}.release.json`, v5, '--json']);
    expect(installed.code).not.toBe(0);
    expect(`${installed.stdout}${installed.stderr}`, `${installed.stdout}${installed.stderr}`).toMatch(/"code": "RELEASE_UNTRUSTED_SIGNER"/);
    daemons.push(new DaemonProcess(host));
    await waitForAgent(host, '4.0.0');

    // The audit log: signed by the old audit key before the restart and the new one after, both in signers.json.
    const signersAfter = JSON.parse(await readFile(join(audit, 'signers.json'), 'utf8')) as { signers: { kid: string }[] };
    expect(signersAfter.signers.length).toBe(signersBefore.signers.length + 1);
    const records = (await readFile(join(audit, 'audit.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { kid: string; alg?: string });
    expect(new Set(records.map((record) => record.kid)).size).toBeGreaterThanOrEqual(2);
    // From the token: the records after the restart are rsa-sha256, and no private key was written.
    if (token) {
      expect(records.at(-1)?.alg).toBe('rsa-sha256');
      expect(existsSync(at('keys', 'release-2026.key'))).toBe(false);
    }
    const verified = await cli(['audit', 'verify', '--signers', join(audit, 'signers.json'), join(audit, 'audit.jsonl')]);
    expect([verified.code, verified.stdout], verified.stderr).toEqual([0, expect.stringMatching(/^VERIFIED \d+ records/)]);
  }, 150_000);
});
