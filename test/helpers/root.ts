// Root-only tests: what this process may do as root (mount a small real file system), whether a
// test that needs it skips here, and mounts that a test always takes down again. On a developer's
// machine such a test skips, saying why; in CI (`DROVER_REQUIRE_ROOT=1`, set by .ci/run) it runs
// and fails instead, so a runner that lost root can never pass as green.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { skipUnlessRequired } from './skip.js';

/** Why this process is not root, or undefined when it is. */
export function rootUnavailable(): string | undefined {
  return process.getuid?.() === 0 ? undefined : 'not running as root';
}

let probed: { reason: string | undefined } | undefined;

/** Why this process cannot mount a tmpfs (not root, or mount refused, as in an unprivileged container), or undefined when it can. */
export function mountUnavailable(): string | undefined {
  probed ??= { reason: rootUnavailable() ?? probeMount() };
  return probed.reason;
}

function probeMount(): string | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'drover-mount-probe-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir], { stdio: 'pipe' });
    execFileSync('umount', [dir], { stdio: 'pipe' });
    return undefined;
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString().trim();
    return `mount is not permitted here (${stderr !== undefined && stderr !== '' ? stderr : (error as Error).message})`;
  } finally {
    rmdirSync(dir);
  }
}

/**
 * True when a root-only test should skip: `reason` says it cannot run here, and
 * `DROVER_REQUIRE_ROOT=1` does not forbid the skip.
 */
export function skipWithoutRoot(what: string, reason: string | undefined): boolean {
  return skipUnlessRequired(what, reason, 'DROVER_REQUIRE_ROOT');
}

/** Mounts a tmpfs on `dir` (`options` as mount's -o, e.g. `size=20m,mode=0700`); returns its unmount (idempotent; detaches lazily when still busy). */
export function mountTmpfs(dir: string, options: string): () => void {
  const reason = mountUnavailable();
  if (reason !== undefined) throw new Error(`Cannot mount a tmpfs on ${dir}: ${reason}.`);
  execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir], { stdio: 'pipe' });
  let mounted = true;
  return () => {
    if (!mounted) return;
    mounted = false;
    try {
      execFileSync('umount', [dir], { stdio: 'pipe' });
    } catch {
      // Still busy (a process left in it): detach it now; the kernel frees it once unused.
      execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
    }
  };
}
