import { createHash } from 'node:crypto';
import { mkdir, open, readFile } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Ed25519PublicKey, isDroverError, parseAuditSigners, sameAuditKey } from '@drover/protocol';
import { AUDIT_LINE_MAX_LENGTH, AuditChain, buildAuditSigners, writeFileAtomic } from '@drover/protocol/internal';
import type { AuditChainHead, AuditEntry, AuditRecord, AuditSigner, AuditVerifyKey } from '@drover/protocol';
import type { AppendedAuditRecord } from '@drover/protocol/internal';
import type { Logger } from 'pino';
import { ManagerError } from '../errors.js';

// The manager's tamper-evident audit log (DESIGN.md "Audit log"): JSON Lines, hash-chained and
// signed by protocol's AuditChain. This module owns the file:
//
// - opened O_APPEND, so each record is one write at the end, whoever else has the file open;
// - durable before `append` resolves: each record is fsynced (fdatasync) before its caller goes on.
//   Concurrent appends share fsyncs (group commit): at most one fsync runs and at most one more is
//   queued, and a queued fsync covers every record written before it starts. So the bound is
//   "durable before acknowledged", at any rate, with at most two fsyncs outstanding;
// - resumed at start from the file's last line. A crash can leave a partial last line (a write cut
//   short): it is cut off, and a record saying so (with the removed bytes' length and SHA-256) is
//   the first one appended, so the repair itself is in the chain;
// - checked against a head kept elsewhere (the store): a log whose last record is older than the
//   head the manager last wrote has lost records at the end, which the chain alone cannot show.
// - signers.json sits beside it, listing every key that signed this log (old keys are kept when
//   the audit key rotates, so old records still verify).

const TAIL_CHUNK_BYTES = 64 * 1024;
// A batch of records is written in chunks of about this many UTF-16 units (a record is at most 3 MB).
const WRITE_CHUNK_CHARS = 1024 * 1024;
// A complete line is at most this many bytes of UTF-8 (3 bytes per UTF-16 code unit at most).
const MAX_LINE_BYTES = 3 * AUDIT_LINE_MAX_LENGTH;

/** A key that signs audit records (a KMS fits here), with the public half that goes into signers.json. */
export interface AuditSignerWithKey {
  /** Signs each record's hash (for a local key, `ed25519AuditSigner` from `@drover/protocol`). */
  signer: AuditSigner;
  /**
   * The signer's public key, written to signers.json so the log verifies: an Ed25519 public key, an
   * rsa-sha256 key, or (for an hmac-sha256 signer) an HMAC key, listed by kid without its secret.
   */
  publicKey: Ed25519PublicKey | AuditVerifyKey;
}

export interface AuditLogOptions {
  /** The log file (JSON Lines), created 0600 if missing. */
  path: string;
  signer: AuditSignerWithKey;
  /** Where to write signers.json (default: `signers.json` beside the log). */
  signersPath?: string;
  /** The head the manager last recorded elsewhere; a log behind it has lost its tail. */
  expectedHead?: AuditChainHead | undefined;
  /** Called with the new head after each durable append (the manager stores it). */
  onHead?: (head: AuditChainHead) => Promise<void> | void;
  logger?: Logger;
  now?: () => Date;
}

async function readAt(handle: FileHandle, start: number, length: number): Promise<Buffer> {
  const buffer = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await handle.read(buffer, done, length - done, start + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return buffer.subarray(0, done);
}

// The offset of the last "\n" before `end`, or -1; scans back at most `maxBytes`.
async function lastNewline(handle: FileHandle, end: number, maxBytes: number): Promise<number | 'too-long'> {
  let position = end;
  while (position > 0) {
    if (end - position > maxBytes) return 'too-long';
    const start = Math.max(0, position - TAIL_CHUNK_BYTES);
    const chunk = await readAt(handle, start, position - start);
    const index = chunk.lastIndexOf(0x0a);
    if (index !== -1) return start + index;
    position = start;
  }
  return -1;
}

/**
 * The manager's audit log writer. One per log file and process.
 *
 * @example
 * ```ts
 * const audit = await AuditLog.open({ path: join(dir, 'audit/audit.jsonl'), signer: { signer: ed25519AuditSigner(key), publicKey: key.publicKey } })
 * await audit.append({ event: 'agent.enrolled', actor: 'agent:a1', agentId: 'a1', outcome: 'success', details: {} })
 * ```
 */
export class AuditLog {
  readonly path: string;
  readonly signersPath: string;
  readonly #handle: FileHandle;
  readonly #chain: AuditChain;
  readonly #onHead: ((head: AuditChainHead) => Promise<void> | void) | undefined;
  readonly #logger: Logger | undefined;
  #size: number;
  #closed = false;
  #syncing: Promise<void> | undefined;
  #queuedSync: Promise<void> | undefined;
  #reportedSeq = 0;
  #pending = new Set<Promise<unknown>>();
  // Set when an fsync failed: what reached the disk is unknown, so nothing more is appended
  // until a restart re-reads the log (see appendMany).
  #failed: unknown;

  private constructor(path: string, signersPath: string, handle: FileHandle, chain: AuditChain, size: number, options: AuditLogOptions) {
    this.path = path;
    this.signersPath = signersPath;
    this.#handle = handle;
    this.#chain = chain;
    this.#size = size;
    this.#onHead = options.onHead;
    this.#logger = options.logger;
  }

  /** Opens (or creates) the log, repairs a partial last line, and resumes its chain. */
  static async open(options: AuditLogOptions): Promise<AuditLog> {
    const signersPath = options.signersPath ?? `${dirname(options.path)}/signers.json`;
    await mkdir(dirname(options.path), { recursive: true, mode: 0o700 });
    await writeSigners(signersPath, options.signer);
    const handle = await open(options.path, 'a+', 0o600);
    try {
      let size = (await handle.stat()).size;
      let removed: { bytes: number; sha256: string } | undefined;
      const newline = await lastNewline(handle, size, MAX_LINE_BYTES + 1);
      if (newline === 'too-long') throw corrupt(`its last ${MAX_LINE_BYTES} bytes hold no line break, so its end is not a record`);
      if (newline !== size - 1 && size > 0) {
        // A write cut short by a crash: these bytes were never acknowledged to anyone.
        const partial = await readAt(handle, newline + 1, size - newline - 1);
        removed = { bytes: partial.length, sha256: createHash('sha256').update(partial).digest('hex') };
        await handle.truncate(newline + 1);
        await handle.sync();
        size = newline + 1;
      }
      let lastLine: string | undefined;
      if (size > 0) {
        const previous = await lastNewline(handle, size - 1, MAX_LINE_BYTES + 1);
        if (previous === 'too-long') throw corrupt(`its last line is longer than ${MAX_LINE_BYTES} bytes`);
        lastLine = (await readAt(handle, previous + 1, size - 1 - (previous + 1))).toString('utf8');
      }
      let chain: AuditChain;
      try {
        chain = AuditChain.resume(lastLine, options.signer.signer, options.now === undefined ? {} : { now: options.now });
      } catch (error) {
        if (!isDroverError(error)) throw error;
        throw corrupt(error.message, error);
      }
      const head = chain.head;
      const expected = options.expectedHead;
      if (expected !== undefined) {
        // truncation: the chain cannot show records cut off its end; the head kept in the store can.
        if (head === undefined || head.seq < expected.seq) {
          throw new ManagerError(
            'AUDIT_LOG_TRUNCATED',
            `The audit log ${options.path} ends at seq ${head?.seq ?? 0}, but the manager had written up to seq ${expected.seq}: records were removed from its end. ` +
              'Restore the log from a backup, or investigate before starting the manager.',
          );
        }
        if (head.seq === expected.seq && head.hash !== expected.hash) {
          throw corrupt(`its last record (seq ${head.seq}) is not the one the manager wrote`);
        }
      }
      const log = new AuditLog(options.path, signersPath, handle, chain, size, options);
      log.#reportedSeq = expected?.seq ?? 0;
      if (removed !== undefined) {
        options.logger?.warn({ event: 'audit.partial_line_removed', ...removed }, 'removed a partial last line from the audit log (a write cut short by a crash)');
        await log.append({
          event: 'audit.partial_line_removed',
          actor: 'system',
          outcome: 'repaired',
          details: { bytes: removed.bytes, sha256: removed.sha256, reason: 'the last line of the log was not terminated: a write cut short by a crash' },
        });
      }
      return log;
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  /** The last record written (or resumed from); undefined for an empty log. */
  get head(): AuditChainHead | undefined {
    return this.#chain.head;
  }

  /**
   * Appends records in order, in one write, then syncs once. An entry the chain cannot take stops
   * the batch: the records before it are written, synced and counted in `written`, and `error`
   * says why the rest was not. A write that fails (a full disk) writes none (`written` is empty). A failed fsync rejects, and every later append too (AUDIT_UNAVAILABLE): after it the
   * file's content is unknown, and only a restart, which re-reads the log, may go on.
   */
  async appendMany(entries: readonly AuditEntry[]): Promise<{ written: AuditRecord[]; error?: unknown }> {
    if (this.#closed) throw new ManagerError('AUDIT_UNAVAILABLE', 'The audit log is closed: the manager is shutting down. Retry against the restarted manager.');
    if (this.#failed !== undefined) throw unavailable(this.#failed);
    let batch: { appended: AppendedAuditRecord[]; error?: unknown };
    try {
      // One write for the batch: a failed one is cut off and leaves the chain where it was.
      batch = await this.#chain.appendMany(entries, (appended) => this.#write(appended.map((a) => a.line)));
    } catch (error) {
      return { written: [], error };
    }
    const written = batch.appended.map((a) => a.record);
    if (written.length > 0) await this.#syncOrStop();
    return batch.error === undefined ? { written } : { written, error: batch.error };
  }

  // After a failed fsync the file's content is unknown: nothing more is appended until a restart.
  async #syncOrStop(): Promise<void> {
    try {
      await this.#sync();
    } catch (caught) {
      this.#failed = caught;
      this.#logger?.fatal({ event: 'audit.sync_failed', err: caught }, 'fsync of the audit log failed: no more records are appended until the manager restarts');
      throw unavailable(caught);
    }
  }

  /** The last `count` records of the log (fewer when it holds fewer), oldest first, as written. */
  async tail(count: number): Promise<AuditRecord[]> {
    const records: AuditRecord[] = [];
    let end = this.#size;
    while (records.length < count && end > 0) {
      const previous = await lastNewline(this.#handle, end - 1, MAX_LINE_BYTES + 1);
      if (previous === 'too-long') throw corrupt(`a line near byte ${end} is longer than ${MAX_LINE_BYTES} bytes`);
      const line = (await readAt(this.#handle, previous + 1, end - 1 - (previous + 1))).toString('utf8');
      try {
        records.unshift(JSON.parse(line) as AuditRecord);
      } catch (error) {
        throw corrupt(`the line ending at byte ${end} is not JSON`, error);
      }
      end = previous + 1;
    }
    return records;
  }

  // Writes the lines at the end, in writes of about WRITE_CHUNK_CHARS at most (a batch of long
  // records is not one buffer of hundreds of MB); all or none: a failure cuts off what was written.
  async #write(lines: readonly string[]): Promise<void> {
    const start = this.#size;
    let written = 0;
    try {
      for (let i = 0; i < lines.length; ) {
        const chunk: string[] = [];
        let length = 0;
        do {
          const line = lines[i++] as string;
          chunk.push(line);
          length += line.length;
        } while (i < lines.length && length < WRITE_CHUNK_CHARS);
        const bytes = Buffer.from(chunk.join(''), 'utf8');
        let offset = 0;
        while (offset < bytes.length) offset += (await this.#handle.write(bytes, offset, bytes.length - offset)).bytesWritten;
        written += bytes.length;
      }
    } catch (error) {
      // A short write would leave a partial line that breaks the next record, and the records of
      // the batch already written are not in the chain: cut it all off.
      await this.#handle.truncate(start).catch(() => undefined);
      throw error;
    }
    this.#size = start + written;
  }

  /** Appends a record and resolves once it is on disk. Never put a secret in `entry`. */
  append(entry: AuditEntry): Promise<AuditRecord> {
    if (this.#closed) {
      return Promise.reject(new ManagerError('AUDIT_UNAVAILABLE', 'The audit log is closed: the manager is shutting down. Retry against the restarted manager.'));
    }
    const work = this.#append(entry);
    this.#pending.add(work);
    void work.finally(() => this.#pending.delete(work)).catch(() => undefined);
    return work;
  }

  async #append(entry: AuditEntry): Promise<AuditRecord> {
    let appended;
    try {
      if (this.#failed !== undefined) throw unavailable(this.#failed);
      appended = await this.#chain.append(entry, ({ line }) => this.#write([line]));
      await this.#syncOrStop();
    } catch (error) {
      if (error instanceof ManagerError || (isDroverError(error) && error.code !== 'SIGNATURE_MALFORMED')) throw error;
      this.#logger?.error({ event: 'audit.write_failed', err: error }, 'failed to write the audit log');
      throw unavailable(error);
    }
    const { seq, hash } = appended.record;
    if (this.#onHead !== undefined && seq > this.#reportedSeq) {
      // Monotonic: concurrent appends may finish out of order; the stored head only moves forward.
      this.#reportedSeq = seq;
      await this.#onHead({ seq, hash });
    }
    return appended.record;
  }

  // Group commit: see the header comment.
  #sync(): Promise<void> {
    if (this.#queuedSync !== undefined) return this.#queuedSync;
    if (this.#syncing === undefined) return this.#startSync();
    const queued = this.#syncing
      .catch(() => undefined)
      .then(() => {
        this.#queuedSync = undefined;
        return this.#startSync();
      });
    this.#queuedSync = queued;
    return queued;
  }

  #startSync(): Promise<void> {
    const run: Promise<void> = this.#handle.datasync().finally(() => {
      if (this.#syncing === run) this.#syncing = undefined;
    });
    this.#syncing = run;
    return run;
  }

  /** Waits for appends in flight, then closes the file; later appends reject with AUDIT_UNAVAILABLE. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled([...this.#pending]);
    await this.#handle.close();
  }
}

function unavailable(cause: unknown): ManagerError {
  return new ManagerError('AUDIT_UNAVAILABLE', 'Failed to write the audit log, so the action was not taken. Check the disk holding the audit log (space, permissions).', { cause });
}

function corrupt(why: string, cause?: unknown): ManagerError {
  return new ManagerError(
    'AUDIT_LOG_CORRUPT',
    `The audit log cannot be continued: ${why}. Run \`drover audit verify\` on it; keep the file for investigation and start a new log only deliberately.`,
    cause === undefined ? {} : { cause },
  );
}

// signers.json keeps every key that ever signed this log: dropping an old key would make the
// records it signed unverifiable after a key rotation.
export async function writeSigners(path: string, current: AuditSignerWithKey): Promise<void> {
  const keys: { kid: string; publicKey: AuditVerifyKey }[] = [];
  let text: string | undefined;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  if (text !== undefined) {
    let existing;
    try {
      existing = parseAuditSigners(text);
    } catch (error) {
      throw new ManagerError('AUDIT_LOG_CORRUPT', `${path} is not a valid signers.json. Restore it from a backup, or move it away to start anew.`, { cause: error });
    }
    for (const [kid, publicKey] of existing) keys.push({ kid, publicKey });
  }
  const currentKey: AuditVerifyKey = current.publicKey instanceof Ed25519PublicKey ? { algorithm: 'ed25519', publicKey: current.publicKey } : current.publicKey;
  // A signer whose records would name another algorithm than its listed key could never verify.
  if ((current.signer.algorithm ?? 'ed25519') !== currentKey.algorithm) {
    throw new ManagerError('AUDIT_SIGNER_CONFIG_INVALID', `The audit signer ${current.signer.kid} signs ${current.signer.algorithm ?? 'ed25519'}, but its key for signers.json is an ${currentKey.algorithm} key. Give the signer and its key of one algorithm.`);
  }
  // signers.json never holds an HMAC secret, so an HMAC key is compared by kid and algorithm only.
  const listed: AuditVerifyKey = currentKey.algorithm === 'hmac-sha256' ? { algorithm: 'hmac-sha256' } : currentKey;
  const known = keys.find((entry) => entry.kid === current.signer.kid);
  if (known !== undefined) {
    if (!sameAuditKey(known.publicKey, listed)) {
      throw new ManagerError('AUDIT_LOG_CORRUPT', `${path} lists key id ${current.signer.kid} with another public key than the audit key's. Check which audit key this manager uses.`);
    }
    return;
  }
  keys.push({ kid: current.signer.kid, publicKey: listed });
  await writeFileAtomic(path, `${JSON.stringify(buildAuditSigners(keys), null, 2)}\n`);
}
