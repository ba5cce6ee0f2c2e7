import { createHash } from 'node:crypto';
import { AuditError, isDroverError } from '@drover/protocol';
import { AUDIT_LINE_MAX_LENGTH, AuditChain, auditEntryBody, canonicalize } from '@drover/protocol/internal';
import type { AppendedAuditRecord } from '@drover/protocol/internal';
import type { AuditChainHead, AuditEntry, AuditRecord, AuditSigner, HmacAuditKey } from '@drover/protocol';
import type { Logger } from 'pino';
import { ManagerError } from '../errors.js';
import type { AuditChainLine, AuditOutboxRow, PendingAuditRecord } from '../store/records.js';
import type { Store } from '../store/store.js';
import type { AuditLog } from './log.js';
import { AuditReader } from './read.js';

// A change and its audit record commit together or not at all (decision 0024). The record is
// written to the store's audit outbox in the change's own transaction (every mutating Store method
// takes `audit`); this module moves committed records from the outbox into the hash-chained log
// (log.ts) in the outbox's order, one writer per log, and removes them from the outbox with the
// log's new head in one store transaction.
//
// - `entry()` stamps the time of the change and canonicalizes the entry before the transaction,
//   so a record the log cannot take (CANONICAL_JSON_UNSUPPORTED, too long) stops the change
//   instead of reaching the outbox.
// - `flush()` is what a request awaits after its change: the record is then in the log too
//   ("durable before acknowledged" as before). It never rejects: if the log cannot be written (a
//   full disk) the records wait in the outbox, durable, the failure is logged, /readyz says so, and
//   the flush is retried with backoff.
// - a crash between the log's fsync and the outbox's cleanup leaves records in both: at start,
//   the records the log holds beyond the head the store kept are matched to outbox rows by
//   content and those rows removed, so no record is appended twice.

const BATCH = 256;
// Records chained per database transaction: signed while the chain's lock is held, so few at a time
// (a signer with a round trip, an HSM or KMS, holds every replica's appends for the batch).
const STORE_BATCH = 32;
// Bytes a record adds to its entry: seq, prev, hash, kid (up to 256), sig and member names.
const RECORD_OVERHEAD = 1024;
const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 30_000;

/** The store's meta key for the log's head (JSON {seq, hash}). */
export const AUDIT_HEAD_META_KEY = 'audit.head';

// The part of a record that its outbox row holds, canonical: what the change made.
function bodyOf(entry: AuditEntry & { ts: string }): string {
  return canonicalize(auditEntryBody(entry));
}

// What replaces a row the chain cannot take: a record saying so, with the row's digest.
function unwritable(row: AuditOutboxRow, code: string): AuditEntry {
  return {
    event: 'audit.entry_unwritable',
    actor: 'system',
    outcome: 'failure',
    details: { bytes: Buffer.byteLength(row.body), sha256: createHash('sha256').update(row.body).digest('hex'), code },
  };
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error('the audit log could not be written', { cause: error });
}

export interface AuditTrailOptions {
  store: Store;
  /**
   * Where the chain goes: a log file (the embedded store: one manager), or the store itself for a
   * store several managers share (`Store.chainAuditOutbox`, decision 0038), with the signer.
   */
  chain: { log: AuditLog } | { signer: AuditSigner };
  /** signers.json: the keys the chain verifies with. */
  signersPath: string;
  /** HMAC secrets the manager holds, by kid: its records verify with them too (see AuditChainSource). */
  macKeys?: ReadonlyMap<string, HmacAuditKey> | undefined;
  logger: Logger;
  now: () => Date;
}

/**
 * The manager's audit trail: records committed with their change in the store's outbox, then
 * moved into the hash-chained log. One per manager process and log.
 */
export class AuditTrail {
  /** The log file, when the chain is kept in one (undefined when the store keeps it). */
  readonly log: AuditLog | undefined;
  /** Reads the chain back: recent records, and its verdict. */
  readonly reader: AuditReader;
  readonly #signer: AuditSigner | undefined;
  readonly #store: Store;
  readonly #logger: Logger;
  readonly #now: () => Date;
  #running: Promise<void> | undefined;
  #queued: Promise<void> | undefined;
  // Outbox rows already in the log whose removal from the outbox has not committed yet.
  #inLog: number[] = [];
  #problem: unknown;
  #retryMs = RETRY_FIRST_MS;
  #retry: NodeJS.Timeout | undefined;
  #closed = false;

  private constructor(options: AuditTrailOptions) {
    this.log = 'log' in options.chain ? options.chain.log : undefined;
    this.#signer = 'signer' in options.chain ? options.chain.signer : undefined;
    if (this.#signer !== undefined && options.store.chainAuditOutbox === undefined) throw new Error(`the ${options.store.kind} store cannot keep the audit chain`);
    this.#store = options.store;
    this.#logger = options.logger;
    this.#now = options.now;
    const keys = { signersPath: options.signersPath, macKeys: options.macKeys };
    this.reader = new AuditReader(this.log === undefined ? { kind: 'store', store: options.store, ...keys } : { kind: 'file', path: this.log.path, ...keys }, options.now);
  }

  /** Reconciles the log with the outbox after a crash, then moves every waiting record into the log (throws if it cannot). */
  static async open(options: AuditTrailOptions, storedHead: AuditChainHead | undefined): Promise<AuditTrail> {
    const trail = new AuditTrail(options);
    const head = trail.log?.head;
    if (head !== undefined && head.seq > (storedHead?.seq ?? 0)) await trail.#reconcile(head.seq - (storedHead?.seq ?? 0));
    await trail.#drain();
    return trail;
  }

  /**
   * Stamps an entry with the time of the change and checks the log can take it; give the result to
   * the Store method that makes the change. Throws AUDIT_RECORD_MALFORMED (a bug in the caller) or
   * CANONICAL_JSON_UNSUPPORTED before anything changes.
   */
  entry(entry: AuditEntry): PendingAuditRecord {
    const body = bodyOf({ ...entry, ts: entry.ts ?? this.#now().toISOString() });
    if (body.length + RECORD_OVERHEAD > AUDIT_LINE_MAX_LENGTH) {
      throw new AuditError('AUDIT_RECORD_MALFORMED', `The audit record of ${entry.event} would be ${body.length} characters long, above the log's limit: nothing was changed.`);
    }
    return { body };
  }

  /** Records what came with no change of state (a refusal, a token's use): in the outbox, then in the log. */
  async append(entry: AuditEntry): Promise<void> {
    if (this.#closed) throw new ManagerError('AUDIT_UNAVAILABLE', 'The audit log is closed: the manager is shutting down. Retry against the restarted manager.');
    await this.#store.appendAudit([this.entry(entry)]);
    await this.flush();
  }

  /**
   * Moves the records committed so far into the log. Resolves once every record committed before
   * the call is in the log, or once that failed (logged, retried later: the records stay in the
   * outbox); never rejects.
   */
  flush(): Promise<void> {
    if (this.#queued !== undefined) return this.#queued;
    if (this.#running === undefined) return this.#start();
    const queued = this.#running.then(() => {
      this.#queued = undefined;
      return this.#start();
    });
    this.#queued = queued;
    return queued;
  }

  /** Why records are waiting in the outbox instead of the log, if they are (for /readyz). */
  get problem(): string | undefined {
    if (this.#problem === undefined) return undefined;
    return this.#problem instanceof Error ? this.#problem.message : 'the audit log could not be written';
  }

  /** Flushes what is waiting, then closes the log; later appends reject with AUDIT_UNAVAILABLE. */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.flush();
    this.#closed = true;
    clearTimeout(this.#retry);
    await this.#running;
    await this.log?.close();
  }

  #start(): Promise<void> {
    const run: Promise<void> = this.#drain().then(
      () => {
        this.#problem = undefined;
        this.#retryMs = RETRY_FIRST_MS;
      },
      (error: unknown) => {
        this.#problem = error;
        this.#logger.error({ event: 'audit.flush_failed', err: error, retryInMs: this.#retryMs }, 'audit records wait in the store: the audit log could not be written');
        if (!this.#closed && this.#retry === undefined) {
          this.#retry = setTimeout(() => {
            this.#retry = undefined;
            void this.flush();
          }, this.#retryMs);
          this.#retry.unref();
          this.#retryMs = Math.min(this.#retryMs * 2, RETRY_MAX_MS);
        }
      },
    );
    const settled = run.finally(() => {
      if (this.#running === settled) this.#running = undefined;
    });
    this.#running = settled;
    return settled;
  }

  async #complete(ids: number[]): Promise<void> {
    this.#inLog.push(...ids);
    const head = this.log?.head;
    if (head === undefined) return;
    await this.#store.completeAuditOutbox(this.#inLog, AUDIT_HEAD_META_KEY, JSON.stringify(head));
    this.#inLog = [];
  }

  async #drain(): Promise<void> {
    const log = this.log;
    if (log === undefined) return this.#drainInStore();
    if (this.#inLog.length > 0) await this.#complete([]);
    for (;;) {
      const rows = await this.#store.listAuditOutbox(BATCH);
      if (rows.length === 0) return;
      const { written, error } = await log.appendMany(rows.map((row) => JSON.parse(row.body) as AuditEntry));
      const done = rows.slice(0, written.length).map((row) => row.id);
      if (error !== undefined) {
        const poison = rows[written.length] as AuditOutboxRow;
        if (!isDroverError(error) || (error.code !== 'AUDIT_RECORD_MALFORMED' && error.code !== 'CANONICAL_JSON_UNSUPPORTED')) {
          if (done.length > 0) await this.#complete(done);
          throw asError(error);
        }
        // A row the log cannot take must not stop the chain for good: it is replaced by a record
        // saying so, with its digest, and kept in the manager's log for investigation.
        this.#logger.error({ event: 'audit.entry_unwritable', err: error, outboxId: poison.id }, 'an audit record in the outbox cannot be written to the log');
        const replaced = await log.appendMany([unwritable(poison, error.code)]);
        if (replaced.error !== undefined) {
          if (done.length > 0) await this.#complete(done);
          throw asError(replaced.error);
        }
        done.push(poison.id);
      }
      await this.#complete(done);
      if (rows.length < BATCH && error === undefined) return;
    }
  }

  // The chain in the store: each batch is chained, stored and removed from the outbox in one
  // transaction, serialized across managers, so there is nothing to reconcile after a crash.
  async #drainInStore(): Promise<void> {
    const signer = this.#signer as AuditSigner;
    const chainOutbox = this.#store.chainAuditOutbox?.bind(this.#store);
    if (chainOutbox === undefined) return;
    for (;;) {
      const moved = await chainOutbox(
        STORE_BATCH,
        async (last, rows) => {
          const chain = AuditChain.resume(last, signer);
          const lines: AuditChainLine[] = [];
          for (const row of rows) {
            let appended: AppendedAuditRecord;
            try {
              appended = await chain.append(JSON.parse(row.body) as AuditEntry);
            } catch (error) {
              if (!isDroverError(error) || (error.code !== 'AUDIT_RECORD_MALFORMED' && error.code !== 'CANONICAL_JSON_UNSUPPORTED')) throw error;
              this.#logger.error({ event: 'audit.entry_unwritable', err: error, outboxId: row.id }, 'an audit record in the outbox cannot be written to the chain');
              appended = await chain.append(unwritable(row, error.code));
            }
            lines.push({ seq: appended.record.seq, line: appended.line.slice(0, -1) });
          }
          return { lines, head: JSON.stringify(chain.head) };
        },
        AUDIT_HEAD_META_KEY,
      );
      if (moved < STORE_BATCH) return;
    }
  }

  // The log holds `count` records past the head the store kept: a crash came between the log's
  // fsync and the outbox's cleanup. Rows whose content those records hold are already in the log.
  async #reconcile(count: number): Promise<void> {
    const records: AuditRecord[] = (await this.log?.tail(Math.min(count, BATCH * 4))) ?? [];
    const rows = await this.#store.listAuditOutbox(records.length + BATCH);
    const byBody = new Map<string, number[]>();
    for (const row of rows) byBody.set(row.body, [...(byBody.get(row.body) ?? []), row.id]);
    const ids: number[] = [];
    for (const record of records) {
      const id = byBody.get(bodyOf(record))?.shift();
      if (id !== undefined) ids.push(id);
    }
    this.#logger.warn({ event: 'audit.reconciled', recordsPastHead: count, outboxRowsRemoved: ids.length }, 'the audit log was ahead of the store after a crash: reconciled');
    await this.#complete(ids);
  }
}
