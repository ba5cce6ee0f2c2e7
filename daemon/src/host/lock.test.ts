import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { expectRejection } from '../../../test/helpers/expect-error.js';
import { DaemonError } from '../errors.js';
import { acquireStateLock } from './lock.js';
import { currentIdentity } from './process-identity.js';

describe('one daemon per state directory', () => {
  let dir: string;
  const options = (): Parameters<typeof acquireStateLock>[1] => ({
    lockPath: join(dir, 'droverd.lock'),
    ownerPath: join(dir, 'droverd.pid'),
    onCompromised: () => undefined,
  });
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'droverd-lock-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('a second acquisition fails with STATE_LOCKED naming the holder; a release frees it', async () => {
    const lock = await acquireStateLock(dir, options());
    const error = await acquireStateLock(dir, options()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DaemonError);
    expect((error as DaemonError).code).toBe('STATE_LOCKED');
    expect((error as DaemonError).message).toContain(`pid ${process.pid}`);
    await lock.release();
    const again = await acquireStateLock(dir, options());
    await again.release();
  });

  it('takes over at once a lock whose recorded owner is dead (a SIGKILLed daemon)', async () => {
    const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    const deadPid = Number(child.stdout);
    await mkdir(join(dir, 'droverd.lock'));
    await writeFile(join(dir, 'droverd.pid'), JSON.stringify({ pid: deadPid, startTime: '1' }));
    const started = Date.now();
    const lock = await acquireStateLock(dir, options());
    expect(Date.now() - started).toBeLessThan(1_000);
    await lock.release();
  });

  it('does not take over a lock whose owner is alive', async () => {
    await mkdir(join(dir, 'droverd.lock'));
    await writeFile(join(dir, 'droverd.pid'), JSON.stringify(await currentIdentity()));
    await expectRejection(acquireStateLock(dir, options()), DaemonError, 'STATE_LOCKED');
  });
});
