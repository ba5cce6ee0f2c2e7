import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { resolvePaths } from '../host/paths.js';
import { silentLogger } from '../logger.js';
import { ReleaseStore } from '../releases/store.js';
import { takeCommands } from './commands.js';
import type { CommandIntakeOptions } from './commands.js';
import { noFailpoints } from './failpoints.js';
import { Journal } from './journal.js';

const envelope = { payloadType: 'application/vnd.drover.release+json', payload: 'e30=', signatures: [{ keyid: '0123456789abcdef', sig: 'AAAA' }] };
const update = (id: string): Record<string, unknown> => ({
  id,
  type: 'update',
  artifact: 'agent',
  release: envelope,
  url: '/v1/download/agent/2.0.0/linux-x64',
  nonce: 'eyJ2IjoxfQ.c2ln',
  force: false,
  drainTimeoutSeconds: 30,
  deadline: new Date(Date.now() + 60_000).toISOString(),
});

describe('taking commands from a check-in: at-least-once delivery, exactly-once execution', () => {
  let dir: string;
  let journal: Journal;
  let started: number;
  let options: CommandIntakeOptions;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'droverd-commands-'));
    journal = await Journal.open(join(dir, 'journal.json'), silentLogger);
    started = 0;
    options = {
      journal,
      store: new ReleaseStore(resolvePaths({ env: {}, stateDir: dir })),
      daemonVersion: '0.1.0',
      failpoints: noFailpoints,
      logger: silentLogger,
      onUpdate: () => {
        started += 1;
      },
    };
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('records an update command (seen, acked, received) in one durable write, and starts it once', async () => {
    await takeCommands([update('c1')], options);
    const reopened = await Journal.open(join(dir, 'journal.json'), silentLogger);
    expect(reopened.update).toMatchObject({ commandId: 'c1', step: 'received', fromVersion: null, artifact: 'agent' });
    expect(reopened.state.pendingAcks).toEqual(['c1']);
    expect(reopened.hasSeen('c1')).toBe(true);
    // Delivered again (the ack was lost): acked again, never run again.
    await journal.mutate((draft) => {
      draft.update = null;
      draft.pendingAcks = [];
    });
    await takeCommands([update('c1')], options);
    expect(journal.update).toBeNull();
    expect(journal.state.pendingAcks).toEqual(['c1']);
    expect(started).toBe(1);
  });

  it('leaves a second update unacked while one is in progress; it comes back later', async () => {
    await takeCommands([update('c1'), update('c2')], options);
    expect(journal.update?.commandId).toBe('c1');
    expect(journal.hasSeen('c2')).toBe(false);
    expect(journal.state.pendingAcks).toEqual(['c1']);
  });

  it('refuses a command of an unknown type (COMMAND_UNSUPPORTED) and a malformed update (COMMAND_INVALID), acking both', async () => {
    await takeCommands([{ id: 'x1', type: 'reboot' }, { ...update('x2'), url: '//evil.example/x' }, { nope: true }], options);
    expect(journal.update).toBeNull();
    expect(journal.state.pendingAcks).toEqual(['x1', 'x2']);
    expect(journal.state.pendingResults).toEqual([
      expect.objectContaining({ commandId: 'x1', outcome: 'rejected', detail: expect.objectContaining({ code: 'COMMAND_UNSUPPORTED' }) as unknown }),
      expect.objectContaining({ commandId: 'x2', outcome: 'rejected', detail: expect.objectContaining({ code: 'COMMAND_INVALID' }) as unknown }),
    ]);
  });
});
