import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { UpdateCommand, UpdateStep } from '@drover/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { expectRejection } from '../../../test/helpers/expect-error.js';
import { DaemonError } from '../errors.js';
import { resolvePaths } from '../host/paths.js';
import type { DaemonPaths } from '../host/paths.js';
import { ReleaseStore } from '../releases/store.js';
import { emptyJournal } from '../update/journal.js';
import type { JournalState } from '../update/journal.js';
import { prepareBoot } from './boot.js';
import { readBootRecord } from './boot-counter.js';

describe('the launcher\'s boot counter', () => {
  let dir: string;
  let paths: DaemonPaths;
  let store: ReleaseStore;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'droverd-launcher-'));
    paths = resolvePaths({ env: {}, stateDir: dir });
    store = new ReleaseStore(paths);
    await store.ensureLayout();
    for (const version of ['1.0.0', '2.0.0']) {
      const part = store.partPath(version);
      await writeFile(part, `droverd ${version}`);
      await store.install({ commandId: version, artifact: 'daemon', manifest: { version, file: { name: 'droverd.mjs', size: 14, sha256: '0'.repeat(64) } }, envelope: undefined, source: part });
    }
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function journalAt(step: UpdateStep): Promise<void> {
    const journal: JournalState = emptyJournal();
    const now = new Date().toISOString();
    journal.update = {
      commandId: 'cmd-9',
      command: {} as UpdateCommand,
      artifact: 'daemon',
      step,
      fromVersion: '1.0.0',
      verified: { manifest: { version: '2.0.0' } as never, deploymentId: 'd', nonceId: 'n', rollback: false },
      resumes: 0,
      deferrals: 0,
      receivedAt: now,
      stepAt: now,
    };
    await writeFile(paths.journal, JSON.stringify(journal));
  }

  it('boots current/daemon; with nothing pending it counts nothing', async () => {
    await store.activate('daemon', '1.0.0', null);
    const decision = await prepareBoot(paths);
    expect(decision.version).toBe('1.0.0');
    expect(decision.counted).toBeUndefined();
  });

  it('counts boots of an uncommitted self-update and goes back after 3 failed ones', async () => {
    await store.activate('daemon', '1.0.0', null);
    await store.activate('daemon', '2.0.0', '1.0.0');
    await journalAt('swapped');
    for (const boot of [1, 2, 3]) {
      const decision = await prepareBoot(paths, 3);
      expect(decision.version).toBe('2.0.0');
      expect(decision.counted?.boots).toBe(boot);
    }
    const fourth = await prepareBoot(paths, 3);
    expect(fourth).toMatchObject({ version: '1.0.0', rolledBack: { from: '2.0.0', to: '1.0.0' } });
    expect(await store.currentVersion('daemon')).toBe('1.0.0');
    expect(await readBootRecord(paths.daemonBoots)).toMatchObject({ commandId: 'cmd-9', rolledBack: true });
    // The old droverd now runs; further boots do not count again.
    expect((await prepareBoot(paths, 3)).version).toBe('1.0.0');
  });

  it('fails clearly when no droverd is installed', async () => {
    await expectRejection(prepareBoot(paths), DaemonError, 'AGENT_NOT_INSTALLED');
  });
});
