import { rename } from 'node:fs/promises';
import type { CommandResult, ReleasePayload, UpdateCommand, UpdateStep } from '@drover/protocol';
import { limits } from '../config.js';
import { readJsonFile, writeJsonAtomic } from '../host/fs-atomic.js';
import type { Logger } from '../logger.js';

// journal.json is droverd's memory across crashes: the update in progress and its step, the
// command ids already taken (exactly-once execution), the nonce ids already used (replay), and the
// acks and results the manager has not confirmed yet. Every change is one atomic, durable write
// (temp + fsync + rename + directory fsync), made BEFORE the step it records is acted on; so a
// daemon killed at any instant restarts from a journal that names a step whose action is idempotent.

/** What an update replaces: the agent, or droverd itself. */
export type Artifact = UpdateCommand['artifact'];

/** The update being carried out, as the journal records it. */
export interface UpdateRecord {
  commandId: string;
  command: UpdateCommand;
  artifact: Artifact;
  step: UpdateStep;
  /** The version of the artifact running when the command arrived (null: none installed). */
  fromVersion: string | null;
  /** Set once the release verified (command_verified): what was signed, and what the nonce said. */
  verified?: {
    manifest: ReleasePayload;
    deploymentId: string;
    nonceId: string;
    rollback: boolean;
  };
  /** Why the update is being rolled back (set with rolling_back). */
  failure?: { code: string; message: string };
  /** How many times droverd restarted inside the current step. */
  resumes: number;
  /** How many times the agent answered 503 to a drain. */
  deferrals: number;
  /**
   * When the agent first answered 503 to this update (set once, in the write that enters deferred):
   * the start of the command's deferral window, kept across restarts.
   */
  firstDeferredAt?: string;
  receivedAt: string;
  stepAt: string;
}

/** The outcome of the last update, kept for `droverd status`. */
export interface LastResult extends CommandResult {
  artifact: Artifact;
  toVersion: string | null;
  at: string;
}

/** journal.json: commands seen, nonces used, acks and results not yet delivered, the update in progress. */
export interface JournalState {
  schema: 'drover.journal/v1';
  /** Command ids taken, newest last (bounded). A command seen again is acked, never run again. */
  seenCommands: string[];
  /** Nonce ids used, with their expiry (seconds since the epoch); expired ones may be forgotten. */
  usedNonces: { id: string; exp: number }[];
  /** Command ids to ack on the next check-in. */
  pendingAcks: string[];
  /** Outcomes to report until a check-in carrying them gets a 200. */
  pendingResults: CommandResult[];
  update: UpdateRecord | null;
  lastResult: LastResult | null;
}

/** The journal of a daemon that has done nothing yet. */
export function emptyJournal(): JournalState {
  return { schema: 'drover.journal/v1', seenCommands: [], usedNonces: [], pendingAcks: [], pendingResults: [], update: null, lastResult: null };
}

function isJournal(value: unknown): value is JournalState {
  if (typeof value !== 'object' || value === null) return false;
  const j = value as Partial<JournalState>;
  return (
    j.schema === 'drover.journal/v1' &&
    Array.isArray(j.seenCommands) &&
    Array.isArray(j.usedNonces) &&
    Array.isArray(j.pendingAcks) &&
    Array.isArray(j.pendingResults) &&
    (j.update === null || (typeof j.update === 'object' && typeof j.update.step === 'string' && typeof j.update.commandId === 'string')) &&
    j.lastResult !== undefined
  );
}

/** Reads journal.json without taking the lock (for `droverd status` and the launcher). */
export async function readJournal(path: string): Promise<JournalState | undefined> {
  const value = await readJsonFile(path, limits.journalMaxBytes);
  if (value === undefined) return undefined;
  return isJournal(value) ? value : undefined;
}

/** Keeps the newest `max` entries. */
function bounded<T>(list: T[], max: number): T[] {
  return list.length > max ? list.slice(list.length - max) : list;
}

/**
 * The journal, owned by the one running daemon. Mutations are serialised and each is written
 * durably before `mutate` resolves; readers get the last durable state.
 */
export class Journal {
  readonly #path: string;
  #state: JournalState;
  #queue: Promise<void> = Promise.resolve();

  private constructor(path: string, state: JournalState) {
    this.#path = path;
    this.#state = state;
  }

  /**
   * Opens the journal, creating an empty one when there is none. A journal that cannot be parsed
   * (it never should: writes are atomic) is moved aside and replaced by an empty one, so the host
   * keeps a supervised agent; what runs is then known from the `current` symlinks.
   */
  static async open(path: string, logger: Logger): Promise<Journal> {
    let value: unknown;
    try {
      value = await readJsonFile(path, limits.journalMaxBytes);
    } catch (error) {
      value = error;
    }
    if (value === undefined) {
      const journal = new Journal(path, emptyJournal());
      await journal.mutate(() => undefined);
      return journal;
    }
    if (isJournal(value)) return new Journal(path, value);
    const aside = `${path}.corrupt-${Date.now()}`;
    await rename(path, aside);
    logger.child({ component: 'drover:daemon:journal' }).error({ event: 'journal.corrupt', movedTo: aside }, 'journal.json was unreadable; it was moved aside and a new one started');
    const journal = new Journal(path, emptyJournal());
    await journal.mutate(() => undefined);
    return journal;
  }

  get state(): Readonly<JournalState> {
    return this.#state;
  }

  get update(): UpdateRecord | null {
    return this.#state.update;
  }

  /** Applies `change` to a copy of the state and writes it durably; the change is visible once written. */
  mutate(change: (draft: JournalState) => void): Promise<void> {
    const run = async (): Promise<void> => {
      const draft = structuredClone(this.#state);
      change(draft);
      draft.seenCommands = bounded(draft.seenCommands, limits.journalMaxSeenCommands);
      draft.pendingResults = bounded(draft.pendingResults, limits.journalMaxPendingResults);
      draft.pendingAcks = bounded([...new Set(draft.pendingAcks)], limits.journalMaxSeenCommands);
      if (draft.usedNonces.length > limits.journalMaxUsedNonces) {
        // Forget the nonces that expired longest ago: an expired nonce is refused for its expiry anyway.
        draft.usedNonces = [...draft.usedNonces].sort((a, b) => a.exp - b.exp).slice(draft.usedNonces.length - limits.journalMaxUsedNonces);
      }
      await writeJsonAtomic(this.#path, draft, { mode: 0o600 });
      this.#state = draft;
    };
    const next = this.#queue.then(run, run);
    this.#queue = next.catch(() => undefined);
    return next;
  }

  hasSeen(commandId: string): boolean {
    return this.#state.seenCommands.includes(commandId);
  }

  isNonceUsed(nonceId: string): boolean {
    return this.#state.usedNonces.some((entry) => entry.id === nonceId);
  }

  /** Moves the update to `step` (durably); `extra` changes other fields in the same write. */
  async setStep(step: UpdateStep, extra?: (update: UpdateRecord, draft: JournalState) => void): Promise<UpdateRecord> {
    await this.mutate((draft) => {
      if (draft.update === null) throw new Error('setStep without an update in progress');
      if (draft.update.step !== step) draft.update.resumes = 0;
      draft.update.step = step;
      draft.update.stepAt = new Date().toISOString();
      extra?.(draft.update, draft);
    });
    const update = this.#state.update;
    if (update === null) throw new Error('the update vanished while being written');
    return update;
  }

  /** Ends the update: clears it, records the last result and queues the result for the manager, in one write. */
  async finish(result: CommandResult, toVersion: string | null): Promise<void> {
    await this.mutate((draft) => {
      const artifact = draft.update?.artifact ?? 'agent';
      draft.update = null;
      draft.pendingResults = [...draft.pendingResults.filter((r) => r.commandId !== result.commandId), result];
      draft.lastResult = { ...result, artifact, toVersion, at: new Date().toISOString() };
    });
  }
}
