// The system-call filter of systemd/droverd.service, applied by the kernel to a process started
// here, without booting systemd (this machine must never run it): the unit's SystemCallFilter=
// lines are expanded with the real `systemd-analyze syscall-filter` and applied in order as systemd
// does (the first line sets the mode, each later `~` line removes, each later plain line adds),
// then loaded with libseccomp's Python binding (python3-seccomp) before exec, refusing everything
// else with EPERM as SystemCallErrorNumber=EPERM does. A test then runs real droverd under it.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const unitPath = fileURLToPath(new URL('../../systemd/droverd.service', import.meta.url));
const python = '/usr/bin/python3';

/** Loads an allow list (a file of names) as a seccomp filter, then execs the rest of argv. */
const LOADER = String.raw`
import errno, os, sys
import seccomp
names = open(sys.argv[1]).read().split()
f = seccomp.SyscallFilter(defaction=seccomp.ERRNO(errno.EPERM))
for name in names:
    try:
        f.add_rule(seccomp.ALLOW, name)
    except Exception:
        pass  # not a system call on this architecture (e.g. setuid32), as systemd skips it
f.load()
os.execv(sys.argv[2], sys.argv[2:])
`;

/** Why the unit's filter cannot be applied here (systemd-analyze or python3-seccomp missing), or undefined. */
export function unitFilterUnavailable(): string | undefined {
  const analyze = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
  if (analyze.error !== undefined || analyze.status !== 0) return 'systemd-analyze is not on PATH (apt-get install systemd)';
  const seccomp = spawnSync(python, ['-c', 'import seccomp'], { encoding: 'utf8' });
  if (seccomp.error !== undefined || seccomp.status !== 0) return `${python} cannot import seccomp (apt-get install python3-seccomp)`;
  return undefined;
}

/** Every group `systemd-analyze syscall-filter` knows, with its members (names and nested @groups). */
function syscallGroups(): Map<string, string[]> {
  const result = spawnSync('systemd-analyze', ['syscall-filter', '--no-pager'], { encoding: 'utf8', timeout: 20_000 });
  if (result.status !== 0) throw new Error(`systemd-analyze syscall-filter failed: ${result.stderr}`);
  const groups = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const line of result.stdout.split('\n')) {
    const trimmed = line.trim();
    if (trimmed.startsWith('@') && !line.startsWith(' ')) {
      current = [];
      groups.set(trimmed, current);
    } else if (trimmed !== '' && !trimmed.startsWith('#') && line.startsWith(' ')) {
      current?.push(trimmed);
    } else if (trimmed === '') {
      current = undefined;
    }
  }
  return groups;
}

function expand(names: readonly string[], groups: Map<string, string[]>, into = new Set<string>()): Set<string> {
  for (const name of names) {
    if (!name.startsWith('@')) {
      into.add(name);
      continue;
    }
    const members = groups.get(name);
    if (members === undefined) throw new Error(`systemd-analyze does not know the group ${name}`);
    expand(members, groups, into);
  }
  return into;
}

/** The system calls the unit allows, from its SystemCallFilter= lines in order (an allow list first). */
export function unitAllowedSyscalls(unitText = readFileSync(unitPath, 'utf8')): Set<string> {
  const lines = [...unitText.matchAll(/^SystemCallFilter=(.*)$/gm)].map((m) => (m[1] ?? '').trim());
  const first = lines[0];
  if (first === undefined || first.startsWith('~')) throw new Error('the unit\'s first SystemCallFilter= line is not an allow list');
  const groups = syscallGroups();
  const allowed = new Set<string>();
  for (const line of lines) {
    const deny = line.startsWith('~');
    for (const name of expand((deny ? line.slice(1) : line).split(/\s+/).filter((n) => n !== ''), groups)) {
      if (deny) allowed.delete(name);
      else allowed.add(name);
    }
  }
  return allowed;
}

/**
 * A command prefix that runs what follows under the unit's system-call filter: spawn
 * `prefix[0]` with `[...prefix.slice(1), program, ...args]`. `listFile` receives the allow list.
 */
export function underUnitFilter(listFile: string): string[] {
  writeFileSync(listFile, [...unitAllowedSyscalls()].join('\n'));
  return [python, '-c', LOADER, listFile];
}
