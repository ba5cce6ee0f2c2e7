import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { UpdateCommand } from '@drover/protocol';
import { limits } from '../config.js';
import { silentLogger } from '../logger.js';
import { Journal, readJournal } from './journal.js';

const command = { id: 'cmd-1', type: 'update', artifact: 'agent', nonce: 'a.b', deadline: new Date(Date.now() + 60_000).toISOString() } as unknown as UpdateCommand;

describe('journal.json', () => {
  let dir: string;
  let path: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'droverd-journal-'));
    path = join(dir, 'journal.json');
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('is created empty, mode 0600, and every mutation is on disk when it resolves', async () => {
    const journal = await Journal.open(path, silentLogger);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const now = new Date().toISOString();
    await journal.mutate((draft) => {
      draft.seenCommands.push('cmd-1');
      draft.update = { commandId: 'cmd-1', command, artifact: 'agent', step: 'received', fromVersion: '1.0.0', resumes: 2, deferrals: 0, receivedAt: now, stepAt: now };
    });
    expect((await readJournal(path))?.update?.step).toBe('received');
    const update = await journal.setStep('command_verified', (_u, draft) => {
      draft.usedNonces.push({ id: 'n1', exp: 1 });
    });
    expect(update.step).toBe('command_verified');
    expect(update.resumes).toBe(0); // a new step starts its restart count afresh
    const reopened = await Journal.open(path, silentLogger);
    expect(reopened.update?.step).toBe('command_verified');
    expect(reopened.isNonceUsed('n1')).toBe(true);
    expect(reopened.hasSeen('cmd-1')).toBe(true);
    // No temp file is left behind.
    expect(await readdir(dir)).toEqual(['journal.json']);
  });

  it('finish clears the update, queues the result and records the last result in one write', async () => {
    const journal = await Journal.open(path, silentLogger);
    const now = new Date().toISOString();
    await journal.mutate((draft) => {
      draft.update = { commandId: 'cmd-1', command, artifact: 'agent', step: 'committed', fromVersion: '1.0.0', resumes: 0, deferrals: 0, receivedAt: now, stepAt: now };
      draft.pendingResults.push({ commandId: 'cmd-1', outcome: 'deferred', detail: { code: 'AGENT_BUSY' } });
    });
    await journal.finish({ commandId: 'cmd-1', outcome: 'succeeded', detail: {} }, '2.0.0');
    const state = await readJournal(path);
    expect(state?.update).toBeNull();
    expect(state?.pendingResults).toEqual([{ commandId: 'cmd-1', outcome: 'succeeded', detail: {} }]);
    expect(state?.lastResult).toMatchObject({ commandId: 'cmd-1', outcome: 'succeeded', toVersion: '2.0.0', artifact: 'agent' });
  });

  it('keeps its lists bounded', async () => {
    const journal = await Journal.open(path, silentLogger);
    await journal.mutate((draft) => {
      for (let i = 0; i < limits.journalMaxSeenCommands + 10; i += 1) draft.seenCommands.push(`c${i}`);
    });
    expect(journal.state.seenCommands.length).toBe(limits.journalMaxSeenCommands);
    expect(journal.hasSeen(`c${limits.journalMaxSeenCommands + 9}`)).toBe(true);
    expect(journal.hasSeen('c0')).toBe(false);
  });

  it('moves an unreadable journal aside and starts afresh, so the host keeps its agent', async () => {
    await writeFile(path, '{"schema": "drover.journal/v1", "seenCom');
    const journal = await Journal.open(path, silentLogger);
    expect(journal.update).toBeNull();
    const names = await readdir(dir);
    expect(names.some((name) => name.startsWith('journal.json.corrupt-'))).toBe(true);
    expect(JSON.parse(await readFile(path, 'utf8'))).toMatchObject({ schema: 'drover.journal/v1' });
  });

  it('serialises concurrent mutations', async () => {
    const journal = await Journal.open(path, silentLogger);
    await Promise.all(Array.from({ length: 20 }, (_, i) => journal.mutate((draft) => draft.pendingAcks.push(`a${i}`))));
    expect((await readJournal(path))?.pendingAcks.length).toBe(20);
  });
});
