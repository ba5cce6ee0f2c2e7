import { chmod, lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleDaemon } from '../../daemon/scripts/bundle.js';
import { FakeManager } from '../fakes/fake-manager.js';
import { agentArtifact } from '../helpers/agent-artifact.js';
import { run } from '../helpers/cli.js';
import { rootUnavailable, skipWithoutRoot } from '../helpers/root.js';

// systemd/install.sh and uninstall.sh, run for real into a staging root (--root: no user, no
// systemctl; this machine must never run systemctl). Install twice: the second run changes nothing.
// The droverd command it installs (/usr/local/sbin/droverd) is run on the staged tree through
// DROVER_INSTALL_ROOT. The enrollment token, however given, never appears in the scripts' output.

const script = (name: string): string => fileURLToPath(new URL(`../../systemd/${name}`, import.meta.url));
const TOKEN = 'an-enrollment-token-0123456789';
const skipUnlessRoot = skipWithoutRoot('the install.sh tests that run as root', rootUnavailable());

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
      '--token', TOKEN,
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
    expect(config.manager).toEqual({ url: 'https://manager.example.com', key: manager.managerKey.publicKey.toBase64(), enrollmentToken: TOKEN });
    expect((await stat(join(root, 'etc/drover/droverd.json'))).mode & 0o777).toBe(0o600);
    expect((await stat(state)).mode & 0o777).toBe(0o711);
    // The agent runs as the drover user (decision 0030); systemd-tmpfiles makes its directory at boot.
    expect((JSON.parse(await readFile(join(root, 'etc/drover/droverd.json'), 'utf8')) as { agent: { user?: string } }).agent.user).toBe('drover');
    expect(await readFile(join(root, 'usr/lib/tmpfiles.d/drover.conf'), 'utf8')).toContain('d /var/lib/drover/agent-data 0700 drover drover -');
    expect(JSON.parse(await readFile(join(state, 'trust.json'), 'utf8'))).toEqual(manager.trustPolicy());
    const unit = await readFile(join(root, 'etc/systemd/system/droverd.service'), 'utf8');
    expect(unit).toMatch(/^ExecStart=\S+node --max-semi-space-size=1 --liftoff-only \/usr\/lib\/drover\/launcher\.mjs run$/m);
    expect(result.stdout).toContain('not starting the service');
    expect(result.stdout + result.stderr).not.toContain(TOKEN);
    // The droverd command: executable, root's when installed by root, running this host's node.
    const cli = await stat(join(root, 'usr/local/sbin/droverd'));
    expect(cli.mode & 0o777).toBe(0o755);
    if (process.getuid?.() === 0) expect([cli.uid, cli.gid]).toEqual([0, 0]);
    expect(await readFile(join(root, 'usr/local/sbin/droverd'), 'utf8')).toMatch(/^node='\/\S+'$/m);
  }, 60_000);

  it('is idempotent: a second run keeps config, trust, agent and droverd, and exits 0', async () => {
    const configBefore = await readFile(join(root, 'etc/drover/droverd.json'));
    const result = await run('bash', args, { timeoutMs: 60_000 });
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toContain('unchanged: droverd 1.2.3 is current');
    expect(result.stdout).toContain('droverd.json exists; kept');
    expect(result.stdout).toContain(`unchanged: ${join(root, 'var/lib/drover/trust.json')}`);
    expect(result.stdout).toContain('unchanged: agent 1.0.0 is installed; kept');
    expect(await readFile(join(root, 'etc/drover/droverd.json'))).toEqual(configBefore);
    expect(result.stdout).toContain(`unchanged: the droverd command (${join(root, 'usr/local/sbin/droverd')})`);
    expect(result.stdout).toContain('nothing changed');
    expect((await stat(join(root, 'usr/local/sbin/droverd'))).mode & 0o777).toBe(0o755);
    // The installed releases verify, through the installed droverd command.
    const verify = await droverdCommand(['verify', '--json']);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    expect(JSON.parse(verify.stdout)).toMatchObject({ ok: true });
  }, 60_000);

  /** The installed /usr/local/sbin/droverd, run on the staged tree, with nothing of droverd's environment but that. */
  const droverdCommand = (commandArgs: string[]) =>
    run(join(root, 'usr/local/sbin/droverd'), commandArgs, { env: { PATH: process.env['PATH'], DROVER_INSTALL_ROOT: root }, timeoutMs: 20_000 });

  it('the droverd command runs the current droverd on the unit\'s directories, passing its arguments through', async () => {
    const version = await droverdCommand(['--version']);
    expect(version.code, version.stderr).toBe(0);
    expect(version.stdout).toBe('1.2.3\n');
    const status = await droverdCommand(['status', '--json']);
    expect(status.code, status.stdout + status.stderr).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({
      state: join(root, 'var/lib/drover'),
      enrolled: false,
      daemon: { running: false, version: '1.2.3', installed: '1.2.3' },
      agent: { current: '1.0.0' },
    });
    // Arguments arrive whole and win over the unit's directories, as droverd's own options do.
    const elsewhere = join(dir, 'a state dir');
    const other = await droverdCommand(['status', '--json', '--state-dir', elsewhere]);
    expect(other.code, other.stdout + other.stderr).toBe(0);
    expect(JSON.parse(other.stdout)).toMatchObject({ state: elsewhere, daemon: { installed: null } });
  }, 60_000);

  it('the droverd command refuses `run`: the service runs the daemon', async () => {
    const refused = await droverdCommand(['run']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('systemctl');
    expect(refused.stdout).toBe('');
    await expect(lstat(join(root, 'var/lib/drover/droverd.pid'))).rejects.toThrow();
  });

  it.skipIf(skipUnlessRoot)('as root, the droverd command runs droverd with no capabilities and no_new_privs', async () => {
    // A stand-in "droverd" release that reports the capabilities it runs with.
    const probeRoot = join(dir, 'probe-root');
    const release = join(probeRoot, 'var/lib/drover/releases/daemon/9.9.9');
    await mkdir(release, { recursive: true });
    await mkdir(join(probeRoot, 'var/lib/drover/current'), { recursive: true });
    await writeFile(join(release, 'installed.json'), JSON.stringify({ schema: 'drover.installed/v1', artifact: 'daemon', version: '9.9.9', file: { name: 'probe.mjs' } }));
    await writeFile(
      join(release, 'probe.mjs'),
      "import { readFileSync } from 'node:fs';\n" +
        "const fields = Object.fromEntries(readFileSync('/proc/self/status', 'utf8').split('\\n').map((l) => l.split(':\\t')).filter((p) => p.length === 2));\n" +
        'console.log(JSON.stringify({ capEff: fields.CapEff, capPrm: fields.CapPrm, capBnd: fields.CapBnd, noNewPrivs: fields.NoNewPrivs, args: process.argv.slice(2) }));\n',
    );
    await symlink(release, join(probeRoot, 'var/lib/drover/current/daemon'));
    const probe = await run(join(root, 'usr/local/sbin/droverd'), ['status', '--json'], { env: { PATH: process.env['PATH'], DROVER_INSTALL_ROOT: probeRoot }, timeoutMs: 20_000 });
    expect(probe.code, probe.stderr).toBe(0);
    expect(JSON.parse(probe.stdout)).toEqual({ capEff: '0000000000000000', capPrm: '0000000000000000', capBnd: '0000000000000000', noNewPrivs: '1', args: ['status', '--json'] });
  });

  it.skipIf(skipUnlessRoot)('as root, refuses a node that anyone but root could replace, installing nothing', async () => {
    // A "node" in a world-writable directory: whoever can write there would run code as root through the unit.
    const unsafe = join(dir, 'unsafe-bin');
    await mkdir(unsafe, { recursive: true });
    await chmod(unsafe, 0o777);
    await writeFile(join(unsafe, 'node'), `#!/bin/sh\nexec ${process.execPath} "$@"\n`, { mode: 0o755 });
    const { fresh, result } = await installFresh('unsafe-node', ['--token', TOKEN], { PATH: `${unsafe}:${process.env['PATH'] ?? ''}` });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`node at ${join(unsafe, 'node')} is not safe to run as root`);
    expect(result.stderr).toContain('writable by its group or by others');
    expect(await readdir(fresh)).toEqual([]);
  });

  it.skipIf(skipUnlessRoot)('as root, refuses a node under a sticky directory like /tmp, even in a root-owned 0755 directory there', async () => {
    // The sticky bit guards root's entries only while they exist: once a cleaner (tmpfiles, a reboot) removes
    // sticky/bin, anyone may create it again with their own node, which the unit would then run as root.
    const sticky = join(dir, 'sticky');
    await mkdir(join(sticky, 'bin'), { recursive: true });
    await chmod(sticky, 0o1777);
    await writeFile(join(sticky, 'bin', 'node'), `#!/bin/sh\nexec ${process.execPath} "$@"\n`, { mode: 0o755 });
    const { fresh, result } = await installFresh('sticky-node', ['--token', TOKEN], { PATH: `${join(sticky, 'bin')}:${process.env['PATH'] ?? ''}` });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`${sticky} is writable by its group or by others (mode 1777)`);
    expect(await readdir(fresh)).toEqual([]);
  });

  /** install.sh into a fresh staging root with a manager and whatever token options, then the config it wrote. */
  async function installFresh(name: string, extra: string[], env: NodeJS.ProcessEnv = process.env) {
    const fresh = join(dir, name);
    await mkdir(fresh, { recursive: true });
    const result = await run(
      'bash',
      [
        script('install.sh'),
        '--root', fresh,
        '--bundle', join(dir, 'droverd.mjs'),
        '--launcher', join(dir, 'launcher.mjs'),
        '--manager', 'https://manager.example.com',
        '--manager-key', manager.managerKey.publicKey.toBase64(),
        ...extra,
      ],
      { env, timeoutMs: 60_000 },
    );
    const config = await readFile(join(fresh, 'etc/drover/droverd.json'), 'utf8').then(
      (text) => JSON.parse(text) as { manager: { enrollmentToken?: string } },
      () => undefined,
    );
    return { fresh, result, output: result.stdout + result.stderr, config };
  }

  it('--token-file FILE: the token, without its newline, goes into droverd.json and nowhere else', async () => {
    const file = join(dir, 'token.txt');
    await writeFile(file, `${TOKEN}-file\r\n`, { mode: 0o600 });
    const { result, output, config } = await installFresh('root-token-file', ['--token-file', file]);
    expect(result.code, output).toBe(0);
    expect(config?.manager.enrollmentToken).toBe(`${TOKEN}-file`);
    expect(output).not.toContain(TOKEN);
  }, 60_000);

  it('refuses an empty, unreadable or two-line token file, and --token with --token-file (exit 2, nothing installed)', async () => {
    const empty = join(dir, 'empty.token');
    await writeFile(empty, '\n');
    const twoLines = join(dir, 'two-lines.token');
    await writeFile(twoLines, `${TOKEN}\nsecond line\n`);
    const cases: [string, string[], string][] = [
      ['root-token-empty', ['--token-file', empty], 'is empty'],
      ['root-token-missing', ['--token-file', join(dir, 'no-such.token')], 'cannot read the enrollment token file'],
      ['root-token-dir', ['--token-file', dir], 'cannot read the enrollment token file'],
      ['root-token-two-lines', ['--token-file', twoLines], 'alone, on one line'],
      ['root-token-both', ['--token-file', empty, '--token', TOKEN], 'not both'],
    ];
    for (const [name, extra, message] of cases) {
      const { fresh, result, output, config } = await installFresh(name, extra);
      expect(result.code, `${name}: ${output}`).toBe(2);
      expect(result.stderr).toContain(message);
      expect(output).not.toContain(TOKEN);
      expect(config).toBeUndefined();
      await expect(lstat(join(fresh, 'usr/lib/drover')), name).rejects.toThrow();
    }
  }, 60_000);

  it('$DROVER_ENROLLMENT_TOKEN: written into droverd.json, never printed; a droverd command that is not drover\'s is kept', async () => {
    const sbin = join(dir, 'root-token-env', 'usr/local/sbin');
    await mkdir(sbin, { recursive: true });
    await writeFile(join(sbin, 'droverd'), '#!/bin/sh\necho mine\n', { mode: 0o755 });
    const { fresh, result, output, config } = await installFresh('root-token-env', [], { ...process.env, DROVER_ENROLLMENT_TOKEN: `${TOKEN}-env` });
    expect(result.code, output).toBe(0);
    expect(config?.manager.enrollmentToken).toBe(`${TOKEN}-env`);
    expect(output).not.toContain(TOKEN);
    expect(result.stdout).toContain(`unchanged: ${join(sbin, 'droverd')} is not drover's; kept`);
    const uninstalled = await run('bash', [script('uninstall.sh'), '--root', fresh]);
    expect(uninstalled.code, uninstalled.stderr).toBe(0);
    expect(await readFile(join(sbin, 'droverd'), 'utf8')).toBe('#!/bin/sh\necho mine\n');
  }, 60_000);

  it('refuses --manager without a pinned key or --tofu', async () => {
    const other = join(dir, 'other-root');
    await mkdir(other);
    const result = await run('bash', [...args.map((a) => (a === root ? other : a)).filter((a, i, all) => a !== '--manager-key' && all[i - 1] !== '--manager-key')], { timeoutMs: 60_000 });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--manager needs --manager-key');
    expect(await readdir(other)).toEqual([]);
  }, 60_000);

  it('an option left without its value, or with an empty one, is a usage error (exit 2) that names it, installing nothing', async () => {
    const bare = join(dir, 'bare-root');
    await mkdir(bare);
    const install = await run('bash', [script('install.sh'), '--root', bare, '--token']);
    expect([install.code, install.stderr.trim()]).toEqual([2, 'install.sh: --token needs a value (see --help)']);
    expect(await readdir(bare)).toEqual([]);
    const uninstall = await run('bash', [script('uninstall.sh'), '--root']);
    expect([uninstall.code, uninstall.stderr.trim()]).toEqual([2, 'uninstall.sh: --root needs a value (see --help)']);
    // An empty DIR (`--root "$UNSET"`) is not taken for the live system.
    const empty = await run('bash', [script('uninstall.sh'), '--root', '', '--purge']);
    expect([empty.code, empty.stderr.trim()]).toEqual([2, 'uninstall.sh: --root needs a value (see --help)']);
    const emptyInstall = await run('bash', [script('install.sh'), '--root', '', '--no-start']);
    expect([emptyInstall.code, emptyInstall.stderr.trim()]).toEqual([2, 'install.sh: --root needs a value (see --help)']);
  });

  it('uninstall.sh removes the unit and the package but keeps config and state; --purge removes them', async () => {
    const kept = await run('bash', [script('uninstall.sh'), '--root', root]);
    expect(kept.code, kept.stderr).toBe(0);
    await expect(lstat(join(root, 'etc/systemd/system/droverd.service'))).rejects.toThrow();
    await expect(lstat(join(root, 'usr/lib/drover'))).rejects.toThrow();
    await expect(lstat(join(root, 'usr/local/sbin/droverd'))).rejects.toThrow();
    expect((await stat(join(root, 'etc/drover/droverd.json'))).isFile()).toBe(true);
    expect((await lstat(join(root, 'var/lib/drover/current/agent'))).isSymbolicLink()).toBe(true);
    const purged = await run('bash', [script('uninstall.sh'), '--root', root, '--purge']);
    expect(purged.code, purged.stderr).toBe(0);
    await expect(lstat(join(root, 'etc/drover'))).rejects.toThrow();
    await expect(lstat(join(root, 'var/lib/drover'))).rejects.toThrow();
  });
});
