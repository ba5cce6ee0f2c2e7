import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAlive, processStat } from '../host/process-identity.js';
import { INSTANCE_ENV, environValue, findMarked, installTag, newInstance, stopProcesses } from './strays.js';

// Real processes, marked as droverd marks its agents: found in /proc by the install's mark, stopped
// with their process group (a child too), never another install's.

const started: ChildProcess[] = [];

/** A detached node process (its own group) with `mark` in its environment, running `script`. */
function marked(mark: string, script: string): ChildProcess {
  const child = spawn(process.execPath, ['-e', script], { env: { PATH: process.env['PATH'], [INSTANCE_ENV]: mark }, stdio: ['ignore', 'pipe', 'inherit'], detached: true });
  started.push(child);
  return child;
}

/** Resolves once the child printed a line (it is set up). */
function ready(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    child.stdout?.once('data', (chunk: Buffer) => {
      resolve(chunk.toString('utf8').trim());
    });
    child.once('exit', () => {
      reject(new Error('exited before it was ready'));
    });
  });
}

/** The signal that ended the child (once it has). */
async function exitSignal(child: ChildProcess): Promise<NodeJS.Signals | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.signalCode;
  return new Promise((resolve) => {
    child.once('exit', (_code, signal) => {
      resolve(signal);
    });
  });
}

const IDLE = 'console.log("up"); setInterval(() => undefined, 1000);';
// A parent that starts a child inheriting its environment (and so the mark), then prints the child's pid.
const WITH_CHILD = `const c = require('node:child_process').spawn(process.execPath, ['-e', 'setInterval(() => undefined, 1000)'], { stdio: 'ignore' }); c.once('spawn', () => console.log(c.pid)); setInterval(() => undefined, 1000);`;
const DEAF = 'process.on("SIGTERM", () => undefined); console.log("up"); setInterval(() => undefined, 1000);';

describe('stray agents: found by the install mark in /proc, stopped with their group', () => {
  let dir: string;
  let tag: string;
  let otherTag: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'droverd-strays-'));
    tag = await installTag(join(dir, 'a'));
    otherTag = await installTag(join(dir, 'b'));
  });

  afterAll(async () => {
    for (const child of started) if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  it('the install tag is a stable hash of the state directory (its real path): 16 hex, the same through a symlink, another for another directory', async () => {
    expect(tag).toMatch(/^[0-9a-f]{16}$/);
    expect(otherTag).not.toBe(tag);
    await mkdir(join(dir, 'real'));
    await symlink(join(dir, 'real'), join(dir, 'link'));
    expect(await installTag(join(dir, 'link'))).toBe(await installTag(join(dir, 'real')));
    const instance = newInstance(tag);
    expect(instance).toMatch(new RegExp(`^${tag}-[0-9a-f]{16}$`));
    expect(newInstance(tag)).not.toBe(instance);
    expect(environValue(Buffer.from(`A=1\0${INSTANCE_ENV}=${instance}\0B=2\0`), INSTANCE_ENV)).toBe(instance);
  });

  it('finds a marked agent and the child it started, stops both with SIGTERM to the group, and leaves another install\'s agent running', async () => {
    const mine = newInstance(tag);
    const parent = marked(mine, WITH_CHILD);
    const childPid = Number(await ready(parent));
    const other = marked(newInstance(otherTag), IDLE);
    await ready(other);

    const found = await findMarked(tag);
    expect(found.map((p) => p.pid).sort()).toEqual([parent.pid, childPid].sort());
    for (const p of found) {
      expect(p.instance).toBe(mine);
      expect(p.pgid).toBe(parent.pid);
    }
    expect((await findMarked(otherTag)).map((p) => p.pid)).toEqual([other.pid]);

    const left = await stopProcesses(found, { graceMs: 5_000 });
    expect(left).toEqual([]);
    expect(await exitSignal(parent)).toBe('SIGTERM');
    // The child is reparented and reaped by init, not by this process: give /proc a moment to agree.
    for (const p of found) {
      for (let i = 0; i < 40 && (await isAlive(p)); i++) await new Promise((resolve) => setTimeout(resolve, 25));
      expect(await isAlive(p)).toBe(false);
    }
    expect(await findMarked(tag)).toEqual([]);
    expect(await isAlive({ pid: other.pid ?? 0, startTime: (await processStat(other.pid ?? 0))?.startTime })).toBe(true);
  });

  it.skipIf(process.getuid?.() !== 0)("ignores another user's process that carries this install's mark (the mark is no secret)", async () => {
    // As root, a process of user nobody copying the mark: droverd must neither count it nor signal its group.
    // sleep(1), not node: the node under test may sit in a directory only root can enter (CI's Node 24).
    const impostor = spawn('sleep', ['60'], { env: { PATH: '/usr/bin:/bin', [INSTANCE_ENV]: newInstance(tag) }, stdio: 'ignore', detached: true, uid: 65534, gid: 65534 });
    started.push(impostor);
    await new Promise((resolve, reject) => {
      impostor.once('spawn', resolve);
      impostor.once('error', reject);
    });
    expect((await findMarked(tag)).map((p) => p.pid)).not.toContain(impostor.pid);
    // Seen when droverd would run as that user: the filter is the uid, not the mark.
    expect((await findMarked(tag, '/proc', 65534)).map((p) => p.pid)).toContain(impostor.pid);
    impostor.kill('SIGKILL');
  });

  it('SIGKILLs what ignores SIGTERM once the grace period is over', async () => {
    const deaf = marked(newInstance(tag), DEAF);
    await ready(deaf);
    const found = await findMarked(tag);
    expect(found.map((p) => p.pid)).toEqual([deaf.pid]);
    const since = Date.now();
    expect(await stopProcesses(found, { graceMs: 300 })).toEqual([]);
    expect(Date.now() - since).toBeGreaterThanOrEqual(300);
    expect(await exitSignal(deaf)).toBe('SIGKILL');
  });

  it('never signals a process whose pid was reused (its start time differs) nor the protected group as a whole', async () => {
    const agent = marked(newInstance(tag), IDLE);
    await ready(agent);
    const pid = agent.pid ?? 0;
    const stat = await processStat(pid);
    expect(await stopProcesses([{ pid, startTime: '1', pgid: pid }], { graceMs: 100, killWaitMs: 100 })).toEqual([]);
    expect(await isAlive({ pid, startTime: stat?.startTime })).toBe(true);
    // The group is protected, the process itself is still signalled.
    expect(await stopProcesses([{ pid, startTime: stat?.startTime, pgid: pid }], { graceMs: 5_000, protectPgid: pid })).toEqual([]);
    expect(await isAlive({ pid, startTime: stat?.startTime })).toBe(false);
  });
});
