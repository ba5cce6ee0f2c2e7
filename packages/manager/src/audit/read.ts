import { open, readFile, stat } from 'node:fs/promises';
import { parseAuditSigners, verifyAuditLogLines, withAuditHmacKeys } from '@drover/protocol';
import { AUDIT_LINE_MAX_LENGTH, readFileChunks } from '@drover/protocol/internal';
import type { AuditLogLine, AuditRecord, AuditSignerKeys, AuditVerification, HmacAuditKey } from '@drover/protocol';
import { ManagerError } from '../errors.js';
import type { Store } from '../store/store.js';

// Reading the manager's audit chain back (GET /manager/v1/audit and /manager/v1/audit/verify):
// recent records newest first, and the verdict on the whole chain, wherever the chain is kept (a
// log file, or the store several replicas share; decision 0038). Nothing here writes.

// A line's UTF-8 is at most 3 bytes per UTF-16 code unit; past this the verifier refuses it anyway.
const MAX_LINE_BYTES = 3 * AUDIT_LINE_MAX_LENGTH + 1;
const BACKWARD_CHUNK_BYTES = 64 * 1024;
const CHAIN_PAGE = 1000;
/** Records one page may look at: a filter that matches little ends a page early, with a `next`. */
export const AUDIT_SCAN_MAX = 10_000;

/**
 * The lines of the first `size` bytes of an audit log file, as bytes, split on "\n" only. Not
 * node:readline: it also splits on "\r" and drops it (a log edited to CRLF would verify), and
 * decoding to text here would turn invalid UTF-8 into U+FFFD (an edited byte could pass); the
 * verifier decodes strictly instead.
 */
export async function* auditLogFileLines(path: string, size: number): AsyncGenerator<AuditLogLine> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  for await (const chunk of readFileChunks(path, { limit: size })) {
    let start = 0;
    for (let end = chunk.indexOf(0x0a); end !== -1; end = chunk.indexOf(0x0a, start)) {
      // Copies: readFileChunks reuses its buffer, and the verifier holds one line of look-ahead.
      yield Buffer.concat([...pending, chunk.subarray(start, end)]);
      pending = [];
      pendingBytes = 0;
      start = end + 1;
    }
    if (start < chunk.length) {
      pending.push(Buffer.from(chunk.subarray(start)));
      pendingBytes += chunk.length - start;
      if (pendingBytes > MAX_LINE_BYTES) {
        yield Buffer.concat(pending);
        return;
      }
    }
  }
  if (pendingBytes > 0) yield Buffer.concat(pending);
}

/** Whether the first `size` bytes of a file end with a newline (an empty file does). */
export async function endsWithNewline(path: string, size: number): Promise<boolean> {
  if (size === 0) return true;
  for await (const chunk of readFileChunks(path, { start: size - 1, limit: 1 })) return chunk[0] === 0x0a;
  return false;
}

/**
 * Verifies an audit log file as it is now (a manager may still be appending: a line being written
 * at this moment would otherwise look like a partial record), as `drover audit verify` does.
 */
export async function verifyAuditLogFile(path: string, signers: AuditSignerKeys, allowEmpty: boolean): Promise<AuditVerification> {
  const { size } = await stat(path);
  return verifyAuditLogLines(auditLogFileLines(path, size), signers, { allowEmpty, finalLineTerminated: await endsWithNewline(path, size) });
}

// The complete lines of a file, last first, as text.
async function* fileLinesBackward(path: string): AsyncGenerator<string> {
  const handle = await open(path, 'r');
  try {
    let end = (await handle.stat()).size;
    let tail: Buffer = Buffer.alloc(0);
    // A last line without its newline is a write in progress: not a record yet.
    let first = true;
    while (end > 0) {
      const start = Math.max(0, end - BACKWARD_CHUNK_BYTES);
      const chunk = Buffer.alloc(end - start);
      await handle.read(chunk, 0, chunk.length, start);
      let buffer = Buffer.concat([chunk, tail]);
      end = start;
      for (let index = buffer.lastIndexOf(0x0a); index !== -1; index = buffer.lastIndexOf(0x0a)) {
        const line = buffer.subarray(index + 1);
        if (!first && line.length > 0) yield line.toString('utf8');
        first = false;
        buffer = buffer.subarray(0, index);
      }
      if (buffer.length > MAX_LINE_BYTES) throw new ManagerError('AUDIT_LOG_CORRUPT', `The audit log ${path} holds a line longer than ${MAX_LINE_BYTES} bytes. Run \`drover audit verify\` on it.`);
      tail = Buffer.from(buffer);
    }
    if (tail.length > 0 && !first) yield tail.toString('utf8');
  } finally {
    await handle.close();
  }
}

// The chain in the store, last first.
async function* storeLinesBackward(store: Store): AsyncGenerator<string> {
  const read = store.readAuditChain?.bind(store);
  if (read === undefined) return;
  let before: number | undefined;
  for (;;) {
    const page = await read(0, CHAIN_PAGE, { latest: true, ...(before === undefined ? {} : { before }) });
    for (let i = page.length - 1; i >= 0; i -= 1) yield page[i]?.line ?? '';
    if (page.length < CHAIN_PAGE) return;
    before = page[0]?.seq;
  }
}

/** Which records a page shows. */
export interface AuditFilter {
  agentId?: string | undefined;
  actor?: string | undefined;
  /** An event name; one ending in "." takes every event that starts with it. */
  event?: string | undefined;
}

function matches(record: AuditRecord, filter: AuditFilter): boolean {
  if (filter.agentId !== undefined && record.agentId !== filter.agentId) return false;
  if (filter.actor !== undefined && record.actor !== filter.actor) return false;
  if (filter.event !== undefined && !(filter.event.endsWith('.') ? record.event.startsWith(filter.event) : record.event === filter.event)) return false;
  return true;
}

/**
 * Where the chain is: the log file, or the store (with the path of signers.json either way), and the
 * HMAC secrets the manager holds (its own audit key's, when it is a local hmac-sha256 key): the
 * records they MACed verify with them, which signers.json alone cannot do.
 */
export type AuditChainSource = ({ kind: 'file'; path: string } | { kind: 'store'; store: Store }) & { signersPath: string; macKeys?: ReadonlyMap<string, HmacAuditKey> | undefined };

/** The manager's audit chain, read: pages of recent records and the chain's verdict. */
export class AuditReader {
  readonly #source: AuditChainSource;
  readonly #now: () => Date;
  #verifying: Promise<AuditVerification & { checkedAt: string }> | undefined;

  constructor(source: AuditChainSource, now: () => Date) {
    this.#source = source;
    this.#now = now;
  }

  /** Up to `limit` records with a seq below `before` that match the filter, newest first. */
  async page(options: { limit: number; before?: number | undefined; filter: AuditFilter }): Promise<{ records: AuditRecord[]; next: number | null }> {
    const records: AuditRecord[] = [];
    let scanned = 0;
    let lastSeq: number | undefined;
    const lines = this.#source.kind === 'file' ? fileLinesBackward(this.#source.path) : storeLinesBackward(this.#source.store);
    for await (const line of lines) {
      let record: AuditRecord;
      try {
        record = JSON.parse(line) as AuditRecord;
      } catch (error) {
        throw new ManagerError('AUDIT_LOG_CORRUPT', 'A line of the audit chain is not JSON. Run `drover audit verify --dir` on the manager directory.', { cause: error });
      }
      if (options.before !== undefined && record.seq >= options.before) continue;
      lastSeq = record.seq;
      if (matches(record, options.filter)) records.push(record);
      scanned += 1;
      if (records.length >= options.limit || scanned >= AUDIT_SCAN_MAX) break;
    }
    return { records, next: lastSeq !== undefined && lastSeq > 1 && (records.length >= options.limit || scanned >= AUDIT_SCAN_MAX) ? lastSeq : null };
  }

  /**
   * Verifies the whole chain with the keys of signers.json. One verification at a time: callers
   * that ask while one runs share its verdict.
   */
  verify(): Promise<AuditVerification & { checkedAt: string }> {
    this.#verifying ??= this.#verify().finally(() => {
      this.#verifying = undefined;
    });
    return this.#verifying;
  }

  async #verify(): Promise<AuditVerification & { checkedAt: string }> {
    const source = this.#source;
    const signersText = await readFile(source.signersPath, 'utf8');
    // A running manager's chain is never empty for long (this request's own token.used), so an
    // empty one is reported as EMPTY, as `drover audit verify` does.
    const signers = withAuditHmacKeys(parseAuditSigners(signersText), source.macKeys ?? new Map());
    let verdict: AuditVerification;
    if (source.kind === 'file') verdict = await verifyAuditLogFile(source.path, signers, false);
    else verdict = await verifyAuditLogLines(storeLinesForward(source.store), signers, { allowEmpty: false });
    return { ...verdict, checkedAt: this.#now().toISOString() };
  }
}

// The chain in the store, first to last, up to the last seq when it starts.
async function* storeLinesForward(store: Store): AsyncGenerator<string> {
  const read = store.readAuditChain?.bind(store);
  if (read === undefined) return;
  const end = (await read(0, 1, { latest: true }))[0]?.seq ?? 0;
  for (let after = 0; after < end; ) {
    const page = await read(after, CHAIN_PAGE);
    if (page.length === 0) return;
    for (const row of page) {
      if (row.seq > end) return;
      yield row.line;
    }
    after = page[page.length - 1]?.seq ?? end;
  }
}
