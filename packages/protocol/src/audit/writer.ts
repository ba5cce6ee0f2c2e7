// The audit log's writer: AuditChain stamps, links, hashes and signs each record (the format is in
// record.ts) and returns the line to append; the caller owns the file.

import { toBase64, toHex } from '../bytes.js';
import { canonicalize, canonicalMembers } from '../canonical-json.js';
import { AuditError, CryptoError, isDroverError } from '../errors.js';
import { AUDIT_FIRST_SEQ, AUDIT_GENESIS_HASH, AUDIT_LINE_MAX_LENGTH, chainHash, hashedBody, HEX_HASH, isObject, KID, quote, shapeProblem } from './record.js';
import type { AuditChainHead, AuditRecord } from './record.js';
import { AUDIT_DEFAULT_ALGORITHM, isAuditAlgorithm, signatureLengthFits } from './algorithms.js';
import type { AuditAlgorithm } from './algorithms.js';
import type { AuditSigner } from './signers.js';

/**
 * What happened, as a writer of the audit log describes it (the manager's `AuditLog.append`); the
 * writer adds `seq`, `ts`, the chain link and the signature to make an {@link AuditRecord}.
 */
export interface AuditEntry {
  /** What happened, e.g. `token.used`, `agent.enrolled`, `deployment.started`. */
  event: string;
  /** Who did it: an operator, `agent:<id>`, `system`. */
  actor: string;
  /** How it ended, e.g. `success`, `failure`, `denied`, `deferred`. */
  outcome: string;
  /** The agent concerned, if any. */
  agentId?: string;
  /** The deployment concerned, if any. */
  deploymentId?: string;
  /** A token is named by its id (first 16 hex of its SHA-256), never by its value. */
  tokenId?: string;
  /** Any JSON object; members whose value is undefined are left out. Never put a secret here. */
  details?: Record<string, unknown>;
  /**
   * When it happened, as an ISO 8601 UTC timestamp with milliseconds (`Date.toISOString()`); by
   * default the chain's clock at append. A writer that commits the entry first and appends it
   * later (an outbox) keeps the time of the change here.
   */
  ts?: string;
}

/** A record made by {@link AuditChain.append} and the exact text to append to the log. */
export interface AppendedAuditRecord {
  record: AuditRecord;
  /** The record's canonical JSON followed by "\n": write it in one call to a file opened with O_APPEND. */
  line: string;
}

export interface AuditChainOptions {
  /** The clock that stamps `ts`; tests inject one. */
  now?: () => Date;
  /** Continue after this record instead of starting a new log; see {@link AuditChain.resume}. */
  head?: AuditChainHead;
}

/**
 * The members of a record that its entry gives (all but seq and the chain's link and signature):
 * what an outbox keeps of an entry, canonicalized, and what the writer hashes with `seq`.
 */
export function auditEntryBody(entry: AuditEntry & { ts: string }): Record<string, unknown> {
  return {
    ts: entry.ts,
    event: entry.event,
    actor: entry.actor,
    agentId: entry.agentId,
    deploymentId: entry.deploymentId,
    tokenId: entry.tokenId,
    outcome: entry.outcome,
    details: entry.details ?? {},
  };
}

const ISO_TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

function requireText(value: unknown, name: string, optional: boolean): void {
  if (optional && value === undefined) return;
  if (typeof value !== 'string' || value === '') {
    throw new AuditError('AUDIT_RECORD_MALFORMED', `The audit entry's ${name} must be a non-empty string${optional ? ' when given' : ''}, got ${quote(value)}.`);
  }
}

/**
 * Builds the audit chain: stamps, links, hashes and signs each record, and returns the line to
 * append. It keeps the chain state (next seq, previous hash) in memory; the caller owns the file.
 *
 * Appends are serialised in call order, and the state advances only once a record is complete,
 * so a signer that fails leaves the chain as it was. Pass `persist` to write the line inside that
 * same serialised step: lines then reach the file in seq order even under concurrent appends, and
 * a failed write does not advance the chain (the file may then end with a partial line, which
 * `verifyAuditLog` reports and which must be cut off before appending again).
 *
 * @example
 * ```ts
 * const chain = AuditChain.resume(lastLineOfTheLog, ed25519AuditSigner(key));
 * await chain.append({ event: 'token.used', actor: 'system', outcome: 'success', tokenId, details: {} }, async ({ line }) => {
 *   await handle.appendFile(line); // opened with O_APPEND
 *   await handle.sync();
 * });
 * ```
 */
export class AuditChain {
  readonly #signer: AuditSigner;
  readonly #algorithm: AuditAlgorithm;
  readonly #now: () => Date;
  #nextSeq: number;
  #prevHash: string;
  #queue: Promise<unknown> = Promise.resolve();

  /** Starts a new log (seq 1), or continues after `options.head`. */
  constructor(signer: AuditSigner, options: AuditChainOptions = {}) {
    // Checked at run time too: a KMS adapter in plain JavaScript may hand over anything.
    const kid: unknown = signer.kid;
    if (typeof kid !== 'string' || !KID.test(kid)) {
      throw new AuditError('AUDIT_SIGNERS_INVALID', `The audit signer's kid must be 1-256 printable ASCII characters without spaces, got ${quote(kid)}.`);
    }
    const algorithm: unknown = signer.algorithm ?? AUDIT_DEFAULT_ALGORITHM;
    if (!isAuditAlgorithm(algorithm)) {
      throw new AuditError('AUDIT_SIGNERS_INVALID', `The audit signer's algorithm must be ed25519, rsa-sha256 or hmac-sha256, got ${quote(algorithm)}.`);
    }
    this.#algorithm = algorithm;
    const head = options.head;
    if (head !== undefined && (!Number.isSafeInteger(head.seq) || head.seq < AUDIT_FIRST_SEQ || !HEX_HASH.test(head.hash))) {
      throw new AuditError('AUDIT_RECORD_MALFORMED', 'The chain head must have an integer seq >= 1 and a 64-hex hash.');
    }
    this.#signer = signer;
    this.#now = options.now ?? (() => new Date());
    this.#nextSeq = head === undefined ? AUDIT_FIRST_SEQ : head.seq + 1;
    this.#prevHash = head === undefined ? AUDIT_GENESIS_HASH : head.hash;
  }

  /**
   * Continues a log after a restart, from its last line (or last record). An empty or missing
   * last line starts a new log. The last record must be intact (its hash recomputes); a partial
   * line left by a crash is refused, so the log is verified and repaired before anything is
   * appended to it. Its signature is not checked here: that is `verifyAuditLog`'s job.
   */
  static resume(last: string | AuditRecord | undefined, signer: AuditSigner, options: Omit<AuditChainOptions, 'head'> = {}): AuditChain {
    if (last === undefined || last === '') return new AuditChain(signer, options);
    let record: unknown = last;
    if (typeof last === 'string') {
      const line = last.endsWith('\n') ? last.slice(0, -1) : last;
      if (line.includes('\n')) throw new AuditError('AUDIT_RECORD_MALFORMED', 'AuditChain.resume takes the last line of the audit log, not several lines.');
      try {
        record = JSON.parse(line);
      } catch (error) {
        throw new AuditError(
          'AUDIT_RECORD_MALFORMED',
          'The last line of the audit log is not JSON: probably a write cut short by a crash. Run `drover audit verify` on the log, then remove the partial line before appending.',
          { cause: error },
        );
      }
    }
    if (!isObject(record)) throw new AuditError('AUDIT_RECORD_MALFORMED', 'The last line of the audit log is not a JSON object. Run `drover audit verify` on the log.');
    const problem = shapeProblem(record);
    if (problem !== undefined) throw new AuditError('AUDIT_RECORD_MALFORMED', `The last record of the audit log is malformed: ${problem}. Run \`drover audit verify\` on the log.`);
    const { seq, hash, prev } = record as unknown as AuditRecord;
    let computed: string;
    try {
      computed = toHex(chainHash(canonicalize(hashedBody(record)), prev));
    } catch (error) {
      if (!isDroverError(error)) throw error;
      throw new AuditError('AUDIT_RECORD_MALFORMED', `The last record of the audit log cannot be canonicalized: ${error.message}`, { cause: error });
    }
    if (computed !== hash) {
      throw new AuditError('AUDIT_RECORD_MALFORMED', `The last record of the audit log (seq ${seq}) does not match its hash: the log was modified. Run \`drover audit verify\` on it before appending.`);
    }
    return new AuditChain(signer, { ...options, head: { seq, hash } });
  }

  /** The seq the next record gets. */
  get nextSeq(): number {
    return this.#nextSeq;
  }

  /** The last record appended (or resumed from); undefined for a new, empty log. */
  get head(): AuditChainHead | undefined {
    return this.#nextSeq === AUDIT_FIRST_SEQ ? undefined : { seq: this.#nextSeq - 1, hash: this.#prevHash };
  }

  /**
   * Makes the next record and, if given, hands it to `persist` before the chain moves on. Rejects
   * with AUDIT_RECORD_MALFORMED or CANONICAL_JSON_UNSUPPORTED for a bad entry, or with the
   * signer's or `persist`'s error; in every case the chain stays where it was.
   */
  append(entry: AuditEntry, persist?: (appended: AppendedAuditRecord) => void | Promise<void>): Promise<AppendedAuditRecord> {
    const result = this.#queue.then(() => this.#appendNow(entry, persist));
    this.#queue = result.catch(() => undefined);
    return result;
  }

  /**
   * Makes the next records, in order, and hands them to `persist` in one call (one write for a
   * batch) before the chain moves on past them. An entry that cannot become a record (a bad entry,
   * a signer's error) ends the batch there: the records before it are persisted and returned with
   * `error`. If `persist` rejects, the chain stays where it was and the promise rejects.
   */
  appendMany(entries: readonly AuditEntry[], persist?: (appended: readonly AppendedAuditRecord[]) => void | Promise<void>): Promise<{ appended: AppendedAuditRecord[]; error?: unknown }> {
    const result = this.#queue.then(() => this.#appendManyNow(entries, persist));
    this.#queue = result.catch(() => undefined);
    return result;
  }

  async #appendManyNow(entries: readonly AuditEntry[], persist: ((appended: readonly AppendedAuditRecord[]) => void | Promise<void>) | undefined): Promise<{ appended: AppendedAuditRecord[]; error?: unknown }> {
    const appended: AppendedAuditRecord[] = [];
    let error: unknown;
    let seq = this.#nextSeq;
    let prev = this.#prevHash;
    for (const entry of entries) {
      try {
        appended.push(await this.#record(entry, seq, prev));
      } catch (caught) {
        error = caught;
        break;
      }
      seq += 1;
      prev = (appended.at(-1) as AppendedAuditRecord).record.hash;
    }
    if (appended.length > 0 && persist !== undefined) await persist(appended);
    this.#nextSeq = seq;
    this.#prevHash = prev;
    return error === undefined ? { appended } : { appended, error };
  }

  async #appendNow(entry: AuditEntry, persist: ((appended: AppendedAuditRecord) => void | Promise<void>) | undefined): Promise<AppendedAuditRecord> {
    const appended = await this.#record(entry, this.#nextSeq, this.#prevHash);
    if (persist !== undefined) await persist(appended);
    this.#nextSeq = appended.record.seq + 1;
    this.#prevHash = appended.record.hash;
    return appended;
  }

  // The record of `entry` at `seq` after `prev`: checked, stamped, hashed and signed.
  async #record(entry: AuditEntry, seq: number, prev: string): Promise<AppendedAuditRecord> {
    requireText(entry.event, 'event', false);
    requireText(entry.actor, 'actor', false);
    requireText(entry.outcome, 'outcome', false);
    requireText(entry.agentId, 'agentId', true);
    requireText(entry.deploymentId, 'deploymentId', true);
    requireText(entry.tokenId, 'tokenId', true);
    if (entry.details !== undefined && !isObject(entry.details)) {
      throw new AuditError('AUDIT_RECORD_MALFORMED', "The audit entry's details must be a JSON object.");
    }
    let ts = entry.ts;
    if (ts === undefined) {
      const now = this.#now();
      if (Number.isNaN(now.getTime())) throw new AuditError('AUDIT_RECORD_MALFORMED', 'The audit clock returned an invalid date.');
      ts = now.toISOString();
    } else if (typeof ts !== 'string' || !ISO_TIMESTAMP.test(ts) || Number.isNaN(Date.parse(ts)) || new Date(ts).toISOString() !== ts) {
      throw new AuditError('AUDIT_RECORD_MALFORMED', `The audit entry's ts must be an ISO 8601 UTC timestamp as Date.toISOString() writes it, got ${quote(ts)}.`);
    }
    const body = { seq, ...auditEntryBody({ ...entry, ts }) };
    // Serialised once: the body's members make its canonical JSON (hashed) and, merged by name with
    // prev, hash, alg, kid and sig, the line's.
    const members = canonicalMembers(body);
    const bodyJson = `{${members.map((member) => member[1]).join(',')}}`;
    const hash = chainHash(bodyJson, prev);
    const sig: unknown = await this.#signer.sign(hash);
    if (!(sig instanceof Uint8Array) || !signatureLengthFits(this.#algorithm, sig.length)) {
      throw new CryptoError('SIGNATURE_MALFORMED', `The audit signer ${this.#signer.kid} returned ${sig instanceof Uint8Array ? `${sig.length} bytes` : 'no bytes'}, which is no ${this.#algorithm} signature. Check the signer.`);
    }
    const chained: [string, string][] = [
      ['prev', `"prev":${canonicalize(prev)}`],
      ['hash', `"hash":${canonicalize(toHex(hash))}`],
      ['alg', `"alg":${canonicalize(this.#algorithm)}`],
      ['kid', `"kid":${canonicalize(this.#signer.kid)}`],
      ['sig', `"sig":${canonicalize(toBase64(sig))}`],
    ];
    // RFC 8785 order: by name, as UTF-16 code units (the body has none of these five names).
    const line = `{${[...members, ...chained].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map((member) => member[1]).join(',')}}`;
    // The record is read back from its line, so what the caller gets back is exactly what a
    // verifier will parse (toJSON applied, undefined members gone).
    const record = JSON.parse(line) as AuditRecord;
    if (line.length > AUDIT_LINE_MAX_LENGTH) {
      throw new AuditError('AUDIT_RECORD_MALFORMED', `The audit record would be ${line.length} characters long, above the limit of ${AUDIT_LINE_MAX_LENGTH}. Put less in details.`);
    }
    return { record, line: `${line}\n` };
  }
}
