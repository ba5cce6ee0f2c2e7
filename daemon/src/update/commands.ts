import { CommandStubSchema, UpdateCommandSchema, matchesSchema, schemaProblems } from '@drover/protocol';
import { describeProblems } from '@drover/protocol/internal';
import type { CommandResult } from '@drover/protocol';
import type { Logger } from '../logger.js';
import type { ReleaseStore } from '../releases/store.js';
import type { Failpoints } from './failpoints.js';
import type { Journal } from './journal.js';

// Taking commands from a check-in. Delivery is at-least-once (a command comes again until acked);
// execution is exactly-once because a command's id is recorded in the journal, in the same durable
// write that makes it the update in progress, before anything else happens. A command seen before
// is only acked again. One update runs at a time: another one is left unacked and comes back later.

/** What {@link takeCommands} records commands in and acts with. */
export interface CommandIntakeOptions {
  journal: Journal;
  store: ReleaseStore;
  daemonVersion: string;
  failpoints: Failpoints;
  logger: Logger;
  /** An update was taken: start the update machine. */
  onUpdate: () => void;
}

/** Takes the commands of a check-in: each new one recorded in the journal before it is acted on, one update at a time. */
export async function takeCommands(commands: readonly unknown[], o: CommandIntakeOptions): Promise<void> {
  const log = o.logger.child({ component: 'drover:daemon:commands' });
  for (const raw of commands) {
    if (!matchesSchema(CommandStubSchema, raw)) {
      log.warn({ event: 'command.unreadable' }, 'A command without a valid id and type was ignored');
      continue;
    }
    const { id, type } = raw;
    if (o.journal.hasSeen(id)) {
      // Our ack was lost: ack again, never run again.
      if (!o.journal.state.pendingAcks.includes(id)) {
        await o.journal.mutate((draft) => {
          draft.pendingAcks.push(id);
        });
      }
      continue;
    }
    if (type !== 'update') {
      await refuse(o.journal, id, { code: 'COMMAND_UNSUPPORTED', message: `This droverd does not know commands of type "${type.slice(0, 64)}". Update droverd.` });
      log.warn({ event: 'command.unsupported', commandId: id, type }, 'A command of an unknown type was refused');
      continue;
    }
    if (!matchesSchema(UpdateCommandSchema, raw)) {
      const problems = describeProblems(schemaProblems(UpdateCommandSchema, raw));
      await refuse(o.journal, id, { code: 'COMMAND_INVALID', message: `The update command is malformed (${problems}).`.slice(0, 4096) });
      log.warn({ event: 'command.invalid', commandId: id, problems }, 'A malformed update command was refused');
      continue;
    }
    if (o.journal.update !== null) {
      log.info({ event: 'command.queued', commandId: id, busyWith: o.journal.update.commandId }, 'An update is already in progress; this command will be taken later');
      continue;
    }
    const command = raw;
    const fromVersion = command.artifact === 'daemon' ? o.daemonVersion : ((await o.store.currentVersion('agent')) ?? null);
    const now = new Date().toISOString();
    await o.journal.mutate((draft) => {
      draft.seenCommands.push(id);
      draft.pendingAcks.push(id);
      draft.update = { commandId: id, command, artifact: command.artifact, step: 'received', fromVersion, resumes: 0, deferrals: 0, receivedAt: now, stepAt: now };
    });
    log.info({ event: 'update.step', commandId: id, artifact: command.artifact, step: 'received' }, 'Update command received');
    o.failpoints.hit('received');
    o.onUpdate();
  }
}

async function refuse(journal: Journal, id: string, detail: { code: string; message: string }): Promise<void> {
  const result: CommandResult = { commandId: id, outcome: 'rejected', detail };
  await journal.mutate((draft) => {
    draft.seenCommands.push(id);
    draft.pendingAcks.push(id);
    draft.pendingResults.push(result);
  });
}
