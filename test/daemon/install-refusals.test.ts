import { execFileSync } from 'node:child_process';
import { chmod, cp, lstat, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ed25519PrivateKey } from '@drover/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleDaemon } from '../../daemon/scripts/bundle.js';
import { FakeManager } from '../fakes/fake-manager.js';
import { agentArtifact } from '../helpers/agent-artifact.js';
import { run } from '../helpers/cli.js';
import type { RunResult } from '../helpers/cli.js';
import { treeFingerprint } from '../helpers/tree.js';

// systemd/install.sh checks every option and prerequisite before it writes anything (issue 17): each
// refused run below leaves its --root tree byte-identical (every path, type, mode, owner, content),
// whether the tree is empty or holds a real install. A re-run of a good install says "unchanged" and
// changes nothing; uninstall.sh says what it removed, and only that.

const script = (name: string): string => fileURLToPath(new URL(`../../systemd/${name}`, import.meta.url));
const TOKEN = 'an-enrollment-token-0123456789';
const asRoot = process.getuid?.() === 0;

describe('install.sh: validate everything, then write', () => {
  let dir: string;
  let manager: FakeManager;
  let base: string[];
  let good: string[];
  /** A --root tree holding a complete install (config, trust, agent, unit), copied for each case. */
  let installed: string;

  const f = (name: string): string => join(dir, name);
  const install = (root: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<RunResult> =>
    run('bash', [script('install.sh'), '--root', root, ...base, ...args], { env, timeoutMs: 60_000 });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'droverd-install-refusals-'));
    await bundleDaemon({ entry: 'bin', outfile: f('droverd.mjs'), version: '1.2.3' });
    await bundleDaemon({ entry: 'launcher-main', outfile: f('launcher.mjs') });
    await bundleDaemon({ entry: 'bin', outfile: f('droverd-1.3.0.mjs'), version: '1.3.0' });
    manager = await FakeManager.start();
    const agent = await agentArtifact('1.0.0');
    await writeFile(f('agent.cjs'), agent);
    await writeFile(f('agent.release.json'), JSON.stringify(manager.signRelease({ version: '1.0.0', bytes: agent })));
    // The same agent signed by a key trust.json does not name.
    await writeFile(f('agent.stranger.release.json'), JSON.stringify(manager.signRelease({ version: '1.0.0', bytes: agent, signWith: [Ed25519PrivateKey.generate()] })));
    await writeFile(f('trust.json'), JSON.stringify(manager.trustPolicy()));
    await writeFile(f('trust.broken.json'), '{"keys": [');
    await writeFile(f('token.txt'), `${TOKEN}\n`);
    await writeFile(f('not-a-dir'), 'a file\n');
    base = ['--bundle', f('droverd.mjs'), '--launcher', f('launcher.mjs'), '--no-start'];
    good = [
      '--manager', 'https://manager.example.com',
      '--manager-key', manager.managerKey.publicKey.toBase64(),
      '--token-file', f('token.txt'),
      '--trust', f('trust.json'),
      '--agent', f('agent.cjs'),
      '--agent-release', f('agent.release.json'),
    ];
    installed = f('installed');
    await mkdir(installed);
    const first = await install(installed, good);
    expect(first.code, first.stdout + first.stderr).toBe(0);
  }, 120_000);

  afterAll(async () => {
    await manager.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** Each case: its options (in place of `good`'s), the exit code, a piece of the message. */
  const refusals = (): [string, string[], number, string][] => {
    const without = (...names: string[]): string[] => good.filter((arg, i) => !names.includes(arg) && !names.includes(good[i - 1] ?? ''));
    return [
      ['--manager without --manager-key', without('--manager-key'), 2, '--manager needs --manager-key KEY (or, knowingly, --tofu)'],
      ['--manager-key and --tofu', [...good, '--tofu'], 2, 'give --manager-key KEY or --tofu, not both'],
      ['--manager-key without --manager', without('--manager'), 2, '--manager-key goes with --manager URL'],
      ['a manager URL that is not http(s)', [...without('--manager'), '--manager', 'ftp://manager.example.com'], 2, 'CONFIG_INVALID: "/manager/url" must be an http(s) URL'],
      ['a manager URL that is no URL', [...without('--manager'), '--manager', 'manager.example.com'], 2, 'CONFIG_INVALID'],
      ['a manager URL with credentials', [...without('--manager'), '--manager', 'https://u:p@manager.example.com'], 2, 'without credentials'],
      ['a manager key that is no Ed25519 key', [...without('--manager-key'), '--manager-key', 'bm90IGEga2V5'], 2, 'CONFIG_INVALID: The pinned manager key is not an Ed25519 public key'],
      ['a missing --trust file', [...without('--trust'), '--trust', f('no-such-trust.json')], 2, `--trust ${f('no-such-trust.json')}: no such file`],
      ['a directory as --trust', [...without('--trust'), '--trust', dir], 2, 'not a regular file'],
      ['a --trust file that is no trust policy', [...without('--trust'), '--trust', f('trust.broken.json')], 2, 'TRUST_POLICY_'],
      ['a missing --agent file', [...without('--agent'), '--agent', f('no-such-agent.cjs')], 2, `--agent ${f('no-such-agent.cjs')}: no such file`],
      ['a missing --agent-release file', [...without('--agent-release'), '--agent-release', f('no-such.release.json')], 2, 'no such file'],
      ['--agent without --agent-release', without('--agent-release'), 2, '--agent and --agent-release go together'],
      ['an unknown option', [...good, '--frobnicate'], 2, 'unknown option --frobnicate'],
      ['an option without its value', [...good, '--trust'], 2, '--trust needs a value'],
      ['a missing token file', [...without('--token-file'), '--token-file', f('no-such.token')], 2, 'cannot read the enrollment token file'],
      ['--root that is a file', ['--root', f('not-a-dir')], 2, 'not a directory'],
      ['a bundle that is not there', ['--bundle', f('no-such-droverd.mjs')], 1, 'no droverd bundle at'],
      ['a --version droverd refuses', ['--version', '1.x'], 1, 'the droverd bundle'],
    ];
  };

  it('each refused run leaves an empty --root empty, and installs nothing anywhere', async () => {
    for (const [name, args, code, message] of refusals()) {
      const root = await mkdtemp(join(dir, 'empty-'));
      const before = await treeFingerprint(root);
      const result = await install(root, args);
      expect([result.code, result.stderr], name).toEqual([code, expect.stringContaining(message)]);
      expect(result.stdout, name).toBe('');
      expect(result.stdout + result.stderr, name).not.toContain(TOKEN);
      expect(await treeFingerprint(root), name).toEqual(before);
    }
  }, 240_000);

  it('each refused run leaves a --root that holds a complete install byte-identical', async () => {
    for (const [name, args, code, message] of refusals()) {
      const root = await mkdtemp(join(dir, 'populated-'));
      await cp(installed, root, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
      const before = await treeFingerprint(root);
      const result = await install(root, args);
      expect([result.code, result.stderr], name).toEqual([code, expect.stringContaining(message)]);
      expect(result.stdout, name).toBe('');
      expect(await treeFingerprint(root), name).toEqual(before);
    }
  }, 240_000);

  it('refuses a first agent release that does not verify against the trust policy, before writing anything', async () => {
    const root = await mkdtemp(join(dir, 'stranger-'));
    const args = good.map((arg) => (arg === f('agent.release.json') ? f('agent.stranger.release.json') : arg));
    const result = await install(root, args);
    expect(result.code, result.stdout + result.stderr).toBe(1);
    expect(result.stderr).toContain('the agent release agent.cjs: RELEASE_UNTRUSTED_SIGNER');
    expect((await treeFingerprint(root)).length).toBe(1);
    // --agent with no --trust and none installed: nothing to verify it against.
    const untrusted = await install(root, good.filter((arg, i) => arg !== '--trust' && good[i - 1] !== '--trust'));
    expect([untrusted.code, untrusted.stderr]).toEqual([2, expect.stringContaining('--agent needs a trust policy to verify it against')]);
    expect((await treeFingerprint(root)).length).toBe(1);
  }, 60_000);

  it('refuses to make another droverd current while droverd runs on the state (droverd install would be STATE_LOCKED half-way)', async () => {
    const root = await mkdtemp(join(dir, 'running-'));
    await cp(installed, root, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
    // droverd.pid naming a live process (this one, with its start time) is what a running droverd leaves.
    const stat = await readFile(`/proc/${String(process.pid)}/stat`, 'utf8');
    const startTime = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    await writeFile(join(root, 'var/lib/drover/droverd.pid'), JSON.stringify({ pid: process.pid, startTime }));
    const before = await treeFingerprint(root);
    const result = await install(root, [...good, '--bundle', f('droverd-1.3.0.mjs'), '--force-daemon']);
    expect([result.code, result.stderr]).toEqual([1, expect.stringContaining('droverd is running on')]);
    expect(result.stdout).toBe('');
    expect(await treeFingerprint(root)).toEqual(before);
    // The same run with nothing for droverd install to do goes ahead: it never needs the lock.
    const rerun = await install(root, good);
    expect(rerun.code, rerun.stdout + rerun.stderr).toBe(0);
    expect(rerun.stdout).toContain('nothing changed');
  }, 60_000);

  it('refuses, before writing, on a host without a tool its changes need (cmp, from diffutils)', async () => {
    const bin = join(dir, 'bin-without-cmp');
    await mkdir(bin, { recursive: true });
    const which = (tool: string): string => execFileSync('bash', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim();
    for (const tool of ['bash', 'dirname', 'basename', 'id', 'readlink', 'stat', 'cat', 'mktemp', 'install', 'sed', 'rm', 'mkdir', 'chmod', 'chown', 'mv', 'getent']) {
      await symlink(which(tool), join(bin, tool)).catch(() => undefined);
    }
    await symlink(process.execPath, join(bin, 'node'));
    const root = await mkdtemp(join(dir, 'no-cmp-'));
    const result = await install(root, good, { ...process.env, PATH: bin });
    expect([result.code, result.stderr]).toEqual([1, expect.stringContaining('missing tools: cmp')]);
    expect((await treeFingerprint(root)).length).toBe(1);
  }, 60_000);

  it('reads each file it is given once: --trust from a pipe is checked, then installed, whole', async () => {
    const root = await mkdtemp(join(dir, 'pipe-'));
    const policy = JSON.stringify(manager.trustPolicy());
    // `--trust <(cat trust.json)`: a pipe (/dev/fd/N), readable once.
    const args = good.filter((arg, i) => arg !== '--trust' && good[i - 1] !== '--trust');
    const result = await run('bash', ['-c', 'script="$1"; trust="$2"; shift 2; exec bash "$script" --trust <(cat "$trust") "$@"', 'bash', script('install.sh'), f('trust.json'), '--root', root, ...base, ...args], { timeoutMs: 60_000 });
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(await readFile(join(root, 'var/lib/drover/trust.json'), 'utf8')).toBe(policy);
    expect(result.stdout).toContain('installed: the first agent release (1.0.0)');
  }, 60_000);

  it.skipIf(asRoot)('refuses a --trust file it cannot read (not as root: root reads any file)', async () => {
    const unreadable = f('unreadable-trust.json');
    await writeFile(unreadable, JSON.stringify(manager.trustPolicy()));
    await chmod(unreadable, 0o000);
    const root = await mkdtemp(join(dir, 'unreadable-'));
    const result = await install(root, [...good.filter((arg, i) => arg !== '--trust' && good[i - 1] !== '--trust'), '--trust', unreadable]);
    expect([result.code, result.stderr]).toEqual([2, expect.stringContaining(`--trust ${unreadable}: not readable`)]);
    expect((await treeFingerprint(root)).length).toBe(1);
  });

  it('a re-run says "unchanged" for every part, "nothing changed", and changes nothing', async () => {
    const root = await mkdtemp(join(dir, 'rerun-'));
    await cp(installed, root, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
    const before = await treeFingerprint(root);
    const result = await install(root, good);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    const lines = result.stdout.trim().split('\n');
    expect(lines.filter((line) => /^install\.sh: (installed|created|updated|enabled|started):/.test(line))).toEqual([]);
    for (const part of ['the launcher', "the unit's documentation", 'the droverd 1.2.3 bundle', 'droverd 1.2.3 is current', 'the droverd command', 'droverd.json exists; kept', 'trust.json', 'agent 1.0.0 is installed; kept', 'the unit (']) {
      expect(lines.some((line) => line.startsWith('install.sh: unchanged: ') && line.includes(part)), part).toBe(true);
    }
    expect(result.stdout).not.toContain('--force-daemon');
    expect(lines.at(-1)).toBe('install.sh: nothing changed');
    expect(await treeFingerprint(root)).toEqual(before);
  }, 60_000);

  it('a newer package keeps the current droverd without --force-daemon, says why, and makes it current with it', async () => {
    const root = await mkdtemp(join(dir, 'newer-'));
    await cp(installed, root, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
    const kept = await install(root, [...good, '--bundle', f('droverd-1.3.0.mjs')]);
    expect(kept.code, kept.stdout + kept.stderr).toBe(0);
    expect(kept.stdout).toContain('unchanged: droverd 1.2.3 is current (installed by a package; pass --force-daemon to make 1.3.0 current)');
    expect(kept.stdout).toContain(`installed: the droverd 1.3.0 bundle (${join(root, 'usr/lib/drover/droverd-1.3.0.mjs')})`);
    const forced = await install(root, [...good, '--bundle', f('droverd-1.3.0.mjs'), '--force-daemon']);
    expect(forced.code, forced.stdout + forced.stderr).toBe(0);
    expect(forced.stdout).toContain('installed: droverd 1.3.0 as current/daemon (previous 1.2.3)');
    expect(forced.stdout).toContain('unchanged: the droverd 1.3.0 bundle');
  }, 60_000);

  it('a re-run repairs what is missing or changed, and says exactly that', async () => {
    const root = await mkdtemp(join(dir, 'repair-'));
    await cp(installed, root, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
    await rm(join(root, 'usr/lib/drover/launcher.mjs'));
    await writeFile(join(root, 'etc/systemd/system/droverd.service'), '[Service]\nExecStart=/bin/true\n');
    await chmod(join(root, 'var/lib/drover'), 0o755);
    const result = await install(root, good);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    const changes = result.stdout.split('\n').filter((line) => /^install\.sh: (installed|created|updated):/.test(line));
    expect(changes).toEqual([
      `install.sh: updated: mode 0711 on ${join(root, 'var/lib/drover')}`,
      `install.sh: installed: the launcher (${join(root, 'usr/lib/drover/launcher.mjs')})`,
      `install.sh: updated: the unit (${join(root, 'etc/systemd/system/droverd.service')})`,
    ]);
    // The same tree as the first install (but the --root directory itself, which mkdtemp made 0700).
    expect((await treeFingerprint(root)).slice(1)).toEqual((await treeFingerprint(installed)).slice(1));
  }, 60_000);

  it('uninstall.sh reports what it removed, and only that; --purge under --root claims no user', async () => {
    const root = await mkdtemp(join(dir, 'uninstall-'));
    await cp(installed, root, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
    const removedIn = (result: RunResult): string[] => [...result.stdout.matchAll(/^uninstall\.sh: removed: .* \((.*)\)$/gm)].map((m) => m[1] ?? '');
    const exists = async (path: string): Promise<boolean> => lstat(path).then(() => true, () => false);
    const candidates = ['etc/systemd/system/droverd.service', 'usr/lib/drover', 'usr/lib/tmpfiles.d/drover.conf', 'usr/local/sbin/droverd', 'etc/drover', 'var/lib/drover', 'var/log/drover'].map((p) => join(root, p));

    const before = new Map(await Promise.all(candidates.map(async (p) => [p, await exists(p)] as const)));
    const kept = await run('bash', [script('uninstall.sh'), '--root', root]);
    expect(kept.code, kept.stderr).toBe(0);
    const afterKept = new Map(await Promise.all(candidates.map(async (p) => [p, await exists(p)] as const)));
    expect(removedIn(kept)).toEqual(candidates.filter((p) => before.get(p) === true && afterKept.get(p) === false));
    expect(removedIn(kept)).toEqual(candidates.slice(0, 4));
    expect(kept.stdout).toContain(`kept: ${join(root, 'etc/drover')} (pass --purge to remove it)`);

    const purged = await run('bash', [script('uninstall.sh'), '--root', root, '--purge']);
    expect(purged.code, purged.stderr).toBe(0);
    expect(removedIn(purged)).toEqual(candidates.filter((p) => afterKept.get(p) === true));
    expect(removedIn(purged)).toEqual([join(root, 'etc/drover'), join(root, 'var/lib/drover')]);
    expect(purged.stdout).not.toMatch(/removed: .*user/);
    expect(purged.stdout).toContain('not touched: system users');
    for (const p of candidates) expect(await exists(p), p).toBe(false);

    const again = await run('bash', [script('uninstall.sh'), '--root', root, '--purge']);
    expect(again.code, again.stderr).toBe(0);
    expect(removedIn(again)).toEqual([]);
    expect(again.stdout).toContain(`nothing to remove: droverd is not installed under ${root}`);
  }, 60_000);
});
