import { lstat, mkdir, mkdtemp, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleDaemon } from '../../daemon/scripts/bundle.js';
import { FakeManager } from '../fakes/fake-manager.js';
import { agentArtifact } from '../helpers/agent-artifact.js';
import { run } from '../helpers/cli.js';

// systemd/install.sh and uninstall.sh, run for real into a staging root (--root: no user, no
// systemctl; this machine must never run systemctl). Install twice: the second run changes nothing.

const script = (name: string): string => fileURLToPath(new URL(`../../systemd/${name}`, import.meta.url));

describe('systemd/install.sh and uninstall.sh', () => {
  let dir: string;
  let root: string;
  let args: string[];
  let manager: FakeManager;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'droverd-install-'));
    root = join(dir, 'root');
    await mkdir(root);
    await bundleDaemon({ entry: 'bin', outfile: join(dir, 'droverd.mjs'), version: '1.2.3' });
    await bundleDaemon({ entry: 'launcher-main', outfile: join(dir, 'launcher.mjs') });
    manager = await FakeManager.start();
    const agent = await agentArtifact('1.0.0');
    await writeFile(join(dir, 'agent.cjs'), agent);
    await writeFile(join(dir, 'agent.release.json'), JSON.stringify(manager.signRelease({ version: '1.0.0', bytes: agent })));
    await writeFile(join(dir, 'trust.json'), JSON.stringify(manager.trustPolicy()));
    args = [
      script('install.sh'),
      '--root', root,
      '--bundle', join(dir, 'droverd.mjs'),
      '--launcher', join(dir, 'launcher.mjs'),
      '--manager', 'https://manager.example.com',
      '--manager-key', manager.managerKey.publicKey.toBase64(),
      '--token', 'an-enrollment-token-0123456789',
      '--trust', join(dir, 'trust.json'),
      '--agent', join(dir, 'agent.cjs'),
      '--agent-release', join(dir, 'agent.release.json'),
    ];
  }, 60_000);

  afterAll(async () => {
    await manager.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('installs the launcher, droverd as current/daemon, config 0600, trust, the first agent and the unit', async () => {
    const result = await run('bash', args, { timeoutMs: 60_000 });
    expect(result.code, result.stdout + result.stderr).toBe(0);
    const state = join(root, 'var/lib/drover');
    expect((await stat(join(root, 'usr/lib/drover/launcher.mjs'))).isFile()).toBe(true);
    expect(await readlink(join(state, 'current/daemon'))).toBe('../releases/daemon/1.2.3');
    expect(await readlink(join(state, 'current/agent'))).toBe('../releases/agent/1.0.0');
    const config = JSON.parse(await readFile(join(root, 'etc/drover/droverd.json'), 'utf8')) as { manager: { url: string; key: string; enrollmentToken: string } };
    expect(config.manager).toEqual({ url: 'https://manager.example.com', key: manager.managerKey.publicKey.toBase64(), enrollmentToken: 'an-enrollment-token-0123456789' });
    expect((await stat(join(root, 'etc/drover/droverd.json'))).mode & 0o777).toBe(0o600);
    expect((await stat(state)).mode & 0o777).toBe(0o700);
    expect(JSON.parse(await readFile(join(state, 'trust.json'), 'utf8'))).toEqual(manager.trustPolicy());
    const unit = await readFile(join(root, 'etc/systemd/system/droverd.service'), 'utf8');
    expect(unit).toMatch(/^ExecStart=\S+node --max-semi-space-size=1 --liftoff-only \/usr\/lib\/drover\/launcher\.mjs run$/m);
    expect(result.stdout).toContain('not starting the service');
  }, 60_000);

  it('is idempotent: a second run keeps config, trust, agent and droverd, and exits 0', async () => {
    const configBefore = await readFile(join(root, 'etc/drover/droverd.json'));
    const result = await run('bash', args, { timeoutMs: 60_000 });
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toContain('droverd 1.2.3 is installed; kept');
    expect(result.stdout).toContain('droverd.json exists; kept');
    expect(result.stdout).toContain('trust.json exists; kept');
    expect(result.stdout).toContain('an agent is installed (1.0.0); kept');
    expect(await readFile(join(root, 'etc/drover/droverd.json'))).toEqual(configBefore);
    // The installed releases verify.
    const verify = await run(process.execPath, [join(dir, 'droverd.mjs'), 'verify', '--json', '--state-dir', join(root, 'var/lib/drover')], {
      env: { PATH: process.env['PATH'], CONFIGURATION_DIRECTORY: join(root, 'etc/drover') },
    });
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    expect(JSON.parse(verify.stdout)).toMatchObject({ ok: true });
  }, 60_000);

  it('refuses --manager without a pinned key or --tofu', async () => {
    const other = join(dir, 'other-root');
    await mkdir(other);
    const result = await run('bash', [...args.map((a) => (a === root ? other : a)).filter((a, i, all) => a !== '--manager-key' && all[i - 1] !== '--manager-key')], { timeoutMs: 60_000 });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('--manager needs --manager-key');
  }, 60_000);

  it('uninstall.sh removes the unit and the package but keeps config and state; --purge removes them', async () => {
    const kept = await run('bash', [script('uninstall.sh'), '--root', root]);
    expect(kept.code, kept.stderr).toBe(0);
    await expect(lstat(join(root, 'etc/systemd/system/droverd.service'))).rejects.toThrow();
    await expect(lstat(join(root, 'usr/lib/drover'))).rejects.toThrow();
    expect((await stat(join(root, 'etc/drover/droverd.json'))).isFile()).toBe(true);
    expect((await lstat(join(root, 'var/lib/drover/current/agent'))).isSymbolicLink()).toBe(true);
    const purged = await run('bash', [script('uninstall.sh'), '--root', root, '--purge']);
    expect(purged.code, purged.stderr).toBe(0);
    await expect(lstat(join(root, 'etc/drover'))).rejects.toThrow();
    await expect(lstat(join(root, 'var/lib/drover'))).rejects.toThrow();
  });
});
