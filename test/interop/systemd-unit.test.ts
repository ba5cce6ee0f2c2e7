// systemd/droverd.service against the real systemd-analyze, offline only: this machine must never
// boot systemd or run systemctl (as PID 1 in a namespace it wipes the host's /tmp). CI installs
// systemd; where systemd-analyze is missing these tests say why and skip (unless
// DROVER_REQUIRE_INTEROP=1).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { skipWhenMissing } from '../helpers/interop.js';
import { unitAllowedSyscalls } from '../helpers/unit-filter.js';

const unitPath = fileURLToPath(new URL('../../systemd/droverd.service', import.meta.url));

function analyzeVersion(): string | undefined {
  const result = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
  return result.error === undefined && result.status === 0 ? result.stdout.split('\n')[0] : undefined;
}

const version = analyzeVersion();
if (version === undefined) console.warn('Skipping the systemd unit tests: systemd-analyze is not on PATH (apt-get install systemd).');

describe.skipIf(skipWhenMissing(version === undefined))(`systemd/droverd.service (${version ?? 'systemd-analyze missing'})`, () => {
  let dir: string;
  let unit: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'droverd-unit-'));
    // The unit runs /usr/bin/node; install.sh rewrites that to the host's node. Where node lives
    // elsewhere, verify the unit as install.sh would install it.
    const text = await readFile(unitPath, 'utf8');
    unit = join(dir, 'droverd.service');
    await writeFile(unit, existsSync('/usr/bin/node') ? text : text.replace('ExecStart=/usr/bin/node ', `ExecStart=${process.execPath} `));
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('passes systemd-analyze verify without a warning', () => {
    const result = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8', cwd: dir, timeout: 20_000 });
    expect(result.status, result.stderr).toBe(0);
    expect(`${result.stdout}${result.stderr}`).not.toMatch(/Unknown|ignoring|not executable|Failed/i);
  });

  it('scores an overall exposure of 2.4 or lower on systemd-analyze security --offline=true (decision 0030: the agent user costs 0.7 over 1.7)', () => {
    const result = spawnSync('systemd-analyze', ['security', '--offline=true', '--no-pager', unit], { encoding: 'utf8', cwd: dir, timeout: 20_000 });
    const match = /Overall exposure level for droverd\.service: (\d+(?:\.\d+)?)/.exec(`${result.stdout}${result.stderr}`);
    expect(match, `${result.stdout}${result.stderr}`).not.toBeNull();
    const exposure = Number(match?.[1]);
    console.log(`systemd-analyze security --offline=true: overall exposure ${exposure}`);
    expect(exposure).toBeLessThanOrEqual(2.4);
  });

  it('has the settings DESIGN.md requires, and not MemoryDenyWriteExecute (V8 needs it off)', async () => {
    const text = await readFile(unitPath, 'utf8');
    for (const line of [
      'NoNewPrivileges=yes',
      'ProtectSystem=strict',
      'ProtectHome=yes',
      'PrivateTmp=yes',
      'StateDirectory=drover',
      'ConfigurationDirectory=drover',
      'CapabilityBoundingSet=CAP_SETUID CAP_SETGID CAP_KILL\n', // decision 0030: DESIGN.md's empty set, less what running the agent as its own user takes
      'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6',
      'SystemCallFilter=@system-service',
      'Restart=always',
      'KillMode=mixed',
    ]) {
      expect(text).toContain(line);
    }
    expect(text).not.toMatch(/^MemoryDenyWriteExecute/m);
  });

  it('lets droverd start the agent as its user and signal it under SystemCallFilter=, and denies @resources, @chown and @mount (decision 0031)', () => {
    const allowed = unitAllowedSyscalls();
    // Node's spawn with uid/gid: setgroups(0) drops root's groups, then setgid, setuid (libuv's child).
    for (const name of ['setgroups', 'setgid', 'setuid', 'kill', 'execve', 'clone', 'wait4', 'prlimit64']) expect(allowed, name).toContain(name);
    for (const name of ['setpriority', 'sched_setaffinity', 'chown', 'fchownat', 'mount', 'setresuid', 'capset', 'ptrace']) expect(allowed, name).not.toContain(name);
  });

  it('is Type=notify with a watchdog, NotifyAccess=all for systemd-notify (decision 0029), and no directory nothing uses', async () => {
    const text = await readFile(unitPath, 'utf8');
    for (const line of ['Type=notify\n', 'NotifyAccess=all\n', 'WatchdogSec=60s\n', 'PrivateMounts=yes\n']) expect(text).toContain(line);
    // droverd writes no log files (it logs to the journal): no LogsDirectory= (decision 0029).
    expect(text).not.toMatch(/^Logs?Directory/m);
  });

  it('names as its Documentation= a file install.sh installs', async () => {
    const text = await readFile(unitPath, 'utf8');
    const docs = [...text.matchAll(/^Documentation=file:\/\/(\S+)$/gm)].map((m) => m[1]);
    expect(docs).toEqual(['/usr/lib/drover/install.md']);
    const install = await readFile(fileURLToPath(new URL('../../systemd/install.sh', import.meta.url)), 'utf8');
    expect(install).toContain('put_file "$doc_src" "$lib/install.md"');
    expect(install).toMatch(/^doc_src="\$here\/\.\.\/docs\/install\.md"$/m);
    expect(existsSync(fileURLToPath(new URL('../../docs/install.md', import.meta.url)))).toBe(true);
  });
});
