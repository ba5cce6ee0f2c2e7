// The tamper-evident audit log: JSON Lines, each record hashed together with the previous record's
// hash and signed. Changing, deleting, inserting or reordering a record breaks the chain at that
// record; forging one needs an audit signing key. What a chain alone cannot show is the loss of
// records at the end of the log: compare the verified head (`lastSeq`, `lastHash`) with one kept
// elsewhere (a monitoring system, the manager's database) to detect that.
//
// Record = {seq, ts, event, actor, agentId?, deploymentId?, tokenId?, outcome, details, prev, hash, kid, sig}
//   hash = hex SHA-256( UTF-8(RFC 8785 canonical JSON of the record without prev, hash, kid, sig) || prev hash bytes )
//   prev = hex of the previous record's hash; 64 zeros (32 zero bytes in the hash input) before the first record
//   sig  = base64 of Ed25519 over the 32 raw bytes of `hash`, by the key named `kid`
//   seq  = 1 for the first record, then +1 per record, no gaps
// Each line is the canonical JSON of the whole record followed by "\n". Fields other than
// prev/hash/kid/sig (including any a later version adds) are covered by the hash.
//
// This module does no I/O (@drover/protocol is pure): AuditChain returns the line to append and the
// caller writes it (O_APPEND, one write, fsync); verifiers take text or an iterable of lines.

import { concatBytes, fromBase64, fromHex, toBase64, toHex, utf8 } from './bytes.js';
import { canonicalize } from './canonical-json.js';
import type { JsonObject } from './canonical-json.js';
import { Ed25519PublicKey, SIGNATURE_LENGTH } from './ed25519.js';
import type { Ed25519PrivateKey } from './ed25519.js';
import { AuditError, CryptoError, isDroverError } from './errors.js';
import { sha256 } from './hash.js';

/** `prev` of the first record: the hash input then ends with 32 zero bytes. */
export const AUDIT_GENESIS_HASH = '0'.repeat(64);
/** `seq` of the first record. */
export const AUDIT_FIRST_SEQ = 1;
// A line longer than this is refused by the writer and the verifier alike, so a hostile log cannot
// make the verifier hold an unbounded string, and the writer never writes a line it would refuse.
export const AUDIT_LINE_MAX_LENGTH = 1024 * 1024; // UTF-16 code units of one line, without its "\n"

// Fields outside the hashed body: the chain link and the signature over the hash.
const UNHASHED_FIELDS: ReadonlySet<string> = new Set(['prev', 'hash', 'kid', 'sig']);
const HEX_HASH = /^[0-9a-f]{64}$/;
// kid: printable ASCII without spaces, so a key id (or a KMS key ARN) prints safely in any message.
const KID = /^[\x21-\x7e]{1,256}$/;
// fatal: invalid UTF-8 is an error, not U+FFFD; ignoreBOM: a BOM stays in the text (and is refused).
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
// RFC 3339 date-time, as Date.prototype.toISOString writes it (and any offset).
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})$/;

/**
 * Signs the 32-byte hash of each audit record. Implement it over a KMS or an HSM to keep the audit
 * key out of the manager's memory; {@link ed25519AuditSigner} makes one from a local key.
 */
export interface AuditSigner {
  /** Names the key in each record; signers.json maps it to the public key. */
  readonly kid: string;
  /** Returns the 64-byte Ed25519 signature of `bytes`. */
  sign(bytes: Uint8Array): Uint8Array | Promise<Uint8Array>;
}

/** An {@link AuditSigner} over a local Ed25519 key; its kid is the key's id. */
export function ed25519AuditSigner(key: Ed25519PrivateKey): AuditSigner {
  return { kid: key.keyid, sign: (bytes) => key.sign(bytes) };
}

/** What happened, as the caller of {@link AuditChain.append} describes it. */
export interface AuditEntry {
  /** What happened, e.g. `token.used`, `agent.enrolled`, `deployment.started`. */
  event: string;
  /** Who did it: an operator, `agent:<id>`, `system`. */
  actor: string;
  /** How it ended, e.g. `success`, `failure`, `denied`, `deferred`. */
  outcome: string;
  agentId?: string;
  deploymentId?: string;
  /** A token is named by its id (first 16 hex of its SHA-256), never by its value. */
  tokenId?: string;
  /** Any JSON object; members whose value is undefined are left out. Never put a secret here. */
  details?: Record<string, unknown>;
}

/** One record of the audit log, as written and as verified. */
export interface AuditRecord {
  seq: number;
  ts: string;
  event: string;
  actor: string;
  agentId?: string;
  deploymentId?: string;
  tokenId?: string;
  outcome: string;
  details: JsonObject;
  prev: string;
  hash: string;
  kid: string;
  sig: string;
}

/** A record made by {@link AuditChain.append} and the exact text to append to the log. */
export interface AppendedAuditRecord {
  record: AuditRecord;
  /** The record's canonical JSON followed by "\n": write it in one call to a file opened with O_APPEND. */
  line: string;
}

/** The last record of a chain: the next record gets `seq + 1` and `prev = hash`. */
export interface AuditChainHead {
  seq: number;
  hash: string;
}

export interface AuditChainOptions {
  /** The clock that stamps `ts`; tests inject one. */
  now?: () => Date;
  /** Continue after this record instead of starting a new log; see {@link AuditChain.resume}. */
  head?: AuditChainHead;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// Quotes a value read from an untrusted log for a message: escaped (no terminal control
// characters) and bounded.
function quote(value: unknown): string {
  let text: string;
  if (typeof value === 'string') text = value;
  else if (value === undefined || typeof value === 'symbol' || typeof value === 'function') text = typeof value;
  else {
    try {
      text = JSON.stringify(value);
    } catch {
      text = typeof value; // a bigint, or an object with a cycle
    }
  }
  return JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}...` : text);
}

function short(hash: string): string {
  return `${hash.slice(0, 16)}...`;
}

/** The hashed part of a record: every field except prev, hash, kid and sig. */
function hashedBody(record: object): Record<string, unknown> {
  return Object.fromEntries(Object.entries(record).filter(([name]) => !UNHASHED_FIELDS.has(name)));
}

function chainHash(bodyCanonicalJson: string, prev: string): Uint8Array {
  const prevBytes = fromHex(prev);
  if (prevBytes?.length !== 32) throw new AuditError('AUDIT_RECORD_MALFORMED', `prev must be 64 lowercase hex characters, got ${quote(prev)}.`);
  return sha256(concatBytes(utf8(bodyCanonicalJson), prevBytes));
}

/**
 * The hash a record must carry: SHA-256 of the canonical JSON of its fields other than
 * prev/hash/kid/sig, followed by the 32 bytes of its `prev`.
 */
export function auditRecordHash(record: AuditRecord | (Record<string, unknown> & { prev: string })): Uint8Array {
  return chainHash(canonicalize(hashedBody(record)), record.prev);
}

// The first thing wrong with the shape of a parsed record, or undefined. Shared by the verifier
// and by AuditChain.resume, so a chain never continues from a record the verifier would refuse.
function shapeProblem(record: Record<string, unknown>): string | undefined {
  const { seq, ts, prev, hash, kid, sig, details } = record;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < AUDIT_FIRST_SEQ) return `seq must be an integer >= ${AUDIT_FIRST_SEQ}, got ${quote(seq)}`;
  if (typeof ts !== 'string' || !TIMESTAMP.test(ts) || Number.isNaN(Date.parse(ts))) return `ts must be an RFC 3339 timestamp, got ${quote(ts)}`;
  for (const name of ['event', 'actor', 'outcome'] as const) {
    const value = record[name];
    if (typeof value !== 'string' || value === '') return `${name} must be a non-empty string, got ${quote(value)}`;
  }
  for (const name of ['agentId', 'deploymentId', 'tokenId'] as const) {
    const value = record[name];
    if (value !== undefined && typeof value !== 'string') return `${name} must be a string when present, got ${quote(value)}`;
  }
  if (!isObject(details)) return `details must be a JSON object, got ${quote(details)}`;
  if (typeof prev !== 'string' || !HEX_HASH.test(prev)) return `prev must be 64 lowercase hex characters, got ${quote(prev)}`;
  if (typeof hash !== 'string' || !HEX_HASH.test(hash)) return `hash must be 64 lowercase hex characters, got ${quote(hash)}`;
  if (typeof kid !== 'string' || !KID.test(kid)) return `kid must be 1-256 printable ASCII characters, got ${quote(kid)}`;
  if (typeof sig !== 'string' || fromBase64(sig)?.length !== SIGNATURE_LENGTH) return `sig must be the base64 of a ${SIGNATURE_LENGTH}-byte signature, got ${quote(sig)}`;
  return undefined;
}

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
 * const chain = AuditChain.resume(lastLineOfTheLog, ed25519AuditSigner(key));
 * await chain.append({ event: 'token.used', actor: 'system', outcome: 'success', tokenId, details: {} }, async ({ line }) => {
 *   await handle.appendFile(line); // opened with O_APPEND
 *   await handle.sync();
 * });
 */
export class AuditChain {
  readonly #signer: AuditSigner;
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

  async #appendNow(entry: AuditEntry, persist: ((appended: AppendedAuditRecord) => void | Promise<void>) | undefined): Promise<AppendedAuditRecord> {
    requireText(entry.event, 'event', false);
    requireText(entry.actor, 'actor', false);
    requireText(entry.outcome, 'outcome', false);
    requireText(entry.agentId, 'agentId', true);
    requireText(entry.deploymentId, 'deploymentId', true);
    requireText(entry.tokenId, 'tokenId', true);
    if (entry.details !== undefined && !isObject(entry.details)) {
      throw new AuditError('AUDIT_RECORD_MALFORMED', "The audit entry's details must be a JSON object.");
    }
    const seq = this.#nextSeq;
    const prev = this.#prevHash;
    const now = this.#now();
    if (Number.isNaN(now.getTime())) throw new AuditError('AUDIT_RECORD_MALFORMED', 'The audit clock returned an invalid date.');
    const body = {
      seq,
      ts: now.toISOString(),
      event: entry.event,
      actor: entry.actor,
      agentId: entry.agentId,
      deploymentId: entry.deploymentId,
      tokenId: entry.tokenId,
      outcome: entry.outcome,
      details: entry.details ?? {},
    };
    const bodyJson = canonicalize(body);
    const hash = chainHash(bodyJson, prev);
    const sig: unknown = await this.#signer.sign(hash);
    if (!(sig instanceof Uint8Array) || sig.length !== SIGNATURE_LENGTH) {
      throw new CryptoError('SIGNATURE_MALFORMED', `The audit signer ${this.#signer.kid} returned ${sig instanceof Uint8Array ? `${sig.length} bytes` : 'no bytes'}; an Ed25519 signature is ${SIGNATURE_LENGTH} bytes. Check the signer.`);
    }
    // The record is rebuilt from its canonical text, so what the caller gets back is exactly what
    // a verifier will parse from the line (toJSON applied, undefined members gone).
    const record = { ...(JSON.parse(bodyJson) as JsonObject), prev, hash: toHex(hash), kid: this.#signer.kid, sig: toBase64(sig) } as unknown as AuditRecord;
    const line = canonicalize(record);
    if (line.length > AUDIT_LINE_MAX_LENGTH) {
      throw new AuditError('AUDIT_RECORD_MALFORMED', `The audit record would be ${line.length} characters long, above the limit of ${AUDIT_LINE_MAX_LENGTH}. Put less in details.`);
    }
    const appended = { record, line: `${line}\n` };
    if (persist !== undefined) await persist(appended);
    this.#nextSeq = seq + 1;
    this.#prevHash = record.hash;
    return appended;
  }
}

// ---------------------------------------------------------------------------------------------
// signers.json

/** One entry of signers.json. */
export interface AuditSignerEntry {
  kid: string;
  algorithm: 'ed25519';
  /** Base64 of the raw 32-byte public key. */
  publicKey: string;
}

/** signers.json: the keys whose audit records a verifier accepts. */
export interface AuditSignersDocument {
  signers: AuditSignerEntry[];
}

/** Public keys by kid, as verifiers take them. */
export type AuditSignerKeys = ReadonlyMap<string, Ed25519PublicKey>;

function signersInvalid(message: string, cause?: unknown): AuditError {
  return new AuditError('AUDIT_SIGNERS_INVALID', `${message} Expected {"signers":[{"kid":"...","algorithm":"ed25519","publicKey":"<base64 of 32 bytes>"}]}.`, cause === undefined ? undefined : { cause });
}

/**
 * Reads signers.json (its text, or the parsed value). Throws AuditError `AUDIT_SIGNERS_INVALID`
 * for anything but a non-empty list of distinct kids with Ed25519 keys; unknown fields are
 * refused too, so a misspelt or unsupported setting is not silently ignored.
 */
export function parseAuditSigners(input: unknown): AuditSignerKeys {
  let document = input;
  if (typeof input === 'string') {
    try {
      document = JSON.parse(input) as unknown;
    } catch (error) {
      throw signersInvalid('The signers file is not JSON.', error);
    }
  }
  if (!isObject(document) || !Array.isArray(document['signers'])) throw signersInvalid('The signers file has no "signers" list.');
  const extra = Object.keys(document).filter((name) => name !== 'signers');
  if (extra.length > 0) throw signersInvalid(`The signers file has unknown field(s) ${extra.map(quote).join(', ')}.`);
  const signers: unknown[] = document['signers'];
  if (signers.length === 0) throw signersInvalid('The signers list is empty, so no record could verify.');
  const keys = new Map<string, Ed25519PublicKey>();
  signers.forEach((entry, index) => {
    const where = `signers[${index}]`;
    if (!isObject(entry)) throw signersInvalid(`${where} is not an object.`);
    const unknown = Object.keys(entry).filter((name) => !['kid', 'algorithm', 'publicKey'].includes(name));
    if (unknown.length > 0) throw signersInvalid(`${where} has unknown field(s) ${unknown.map(quote).join(', ')}.`);
    const { kid, algorithm, publicKey } = entry;
    if (typeof kid !== 'string' || !KID.test(kid)) throw signersInvalid(`${where}.kid must be 1-256 printable ASCII characters without spaces.`);
    if (algorithm !== 'ed25519') throw signersInvalid(`${where}.algorithm must be "ed25519", got ${quote(algorithm)}.`);
    const raw = typeof publicKey === 'string' ? fromBase64(publicKey) : undefined;
    if (raw?.length !== 32) throw signersInvalid(`${where}.publicKey must be the base64 of a raw 32-byte Ed25519 public key.`);
    if (keys.has(kid)) throw signersInvalid(`kid ${quote(kid)} is listed twice.`);
    keys.set(kid, new Ed25519PublicKey(raw));
  });
  return keys;
}

/**
 * Builds signers.json from public keys; a key's kid defaults to its key id (what
 * {@link ed25519AuditSigner} uses). Write it with `JSON.stringify(document, null, 2)`.
 */
export function buildAuditSigners(keys: Iterable<Ed25519PublicKey | { kid: string; publicKey: Ed25519PublicKey }>): AuditSignersDocument {
  const signers = [...keys].map((key): AuditSignerEntry => {
    const { kid, publicKey } = key instanceof Ed25519PublicKey ? { kid: key.keyid, publicKey: key } : key;
    return { kid, algorithm: 'ed25519', publicKey: publicKey.toBase64() };
  });
  // Round-trip through the parser so a builder can never write a file the parser refuses.
  parseAuditSigners({ signers });
  return { signers };
}

// ---------------------------------------------------------------------------------------------
// Verification

/** Why a log does not verify; stable strings, for scripts. */
export const auditBreakReasons = [
  'EMPTY',
  'MALFORMED',
  'NOT_CANONICAL',
  'SEQ_OUT_OF_ORDER',
  'PREV_MISMATCH',
  'HASH_MISMATCH',
  'UNKNOWN_SIGNER',
  'SIGNATURE_INVALID',
] as const;
export type AuditBreakReason = (typeof auditBreakReasons)[number];

/** The first broken record: `count` records before it verified. */
export interface AuditBreak {
  ok: false;
  /** Records verified before the broken one. */
  count: number;
  /** The broken record's own seq when it has a valid one, else the seq expected at its position. */
  seq: number;
  /** 1-based line number in the log. */
  line: number;
  reason: AuditBreakReason;
  message: string;
}

export interface AuditIntact {
  ok: true;
  count: number;
  /** The head of the verified chain (0 and 64 zeros for an empty log): compare it with a copy kept elsewhere to detect a truncated tail. */
  lastSeq: number;
  lastHash: string;
}

export type AuditVerification = AuditIntact | AuditBreak;

export interface VerifyAuditLogOptions {
  /** Accept a log with no records (default false: a log truncated to nothing looks like a new one). */
  allowEmpty?: boolean;
  /** Verify a segment of a rotated log that continues after this record. */
  after?: AuditChainHead;
}

export interface VerifyAuditLinesOptions extends VerifyAuditLogOptions {
  /** Whether the input ended with "\n" (default true). If false, the last line is a partial write. */
  finalLineTerminated?: boolean;
}

/** A line of the log as text, or as its raw bytes (UTF-8, decoded strictly). */
export type AuditLogLine = string | Uint8Array;

/**
 * Checks audit log lines one at a time and remembers the first break. Feed it every line (without
 * its "\n"), then call `result()`. Blank lines are refused: the writer never writes one, and every
 * byte of the log must be accounted for by a hash. Give it bytes rather than text decoded by a
 * lenient decoder: invalid UTF-8 is refused here, where a lenient decoder would have turned it
 * into U+FFFD and let an edited byte pass.
 */
export class AuditLogVerifier {
  readonly #signers: AuditSignerKeys;
  readonly #allowEmpty: boolean;
  readonly #firstSeq: number;
  #expectedSeq: number;
  #prevHash: string;
  #lineNumber = 0;
  #broken: AuditBreak | undefined;

  constructor(signers: AuditSignerKeys, options: VerifyAuditLogOptions = {}) {
    if (signers.size === 0) throw new AuditError('AUDIT_SIGNERS_INVALID', 'No audit signers given, so no record could verify. Pass the keys from signers.json.');
    const after = options.after;
    if (after !== undefined && (!Number.isSafeInteger(after.seq) || after.seq < AUDIT_FIRST_SEQ || !HEX_HASH.test(after.hash))) {
      throw new AuditError('AUDIT_RECORD_MALFORMED', 'The head to verify after must have an integer seq >= 1 and a 64-hex hash.');
    }
    this.#signers = signers;
    this.#allowEmpty = options.allowEmpty ?? false;
    this.#firstSeq = options.after === undefined ? AUDIT_FIRST_SEQ : options.after.seq + 1;
    this.#expectedSeq = this.#firstSeq;
    this.#prevHash = options.after?.hash ?? AUDIT_GENESIS_HASH;
  }

  /** The first break found so far, if any. */
  get broken(): AuditBreak | undefined {
    return this.#broken;
  }

  /**
   * Checks the next line. `terminated` is false only for a last line that had no "\n" after it.
   * Returns the break if this line is (or an earlier one was) broken.
   */
  push(line: AuditLogLine, terminated = true): AuditBreak | undefined {
    if (this.#broken !== undefined) return this.#broken;
    this.#lineNumber += 1;
    this.#broken = this.#check(line, terminated);
    return this.#broken;
  }

  /** The verdict on everything pushed so far. */
  result(): AuditVerification {
    if (this.#broken !== undefined) return this.#broken;
    const count = this.#expectedSeq - this.#firstSeq;
    if (count === 0 && !this.#allowEmpty) {
      return this.#break(this.#expectedSeq, 'EMPTY', 'The audit log has no records. A log cut down to nothing cannot be told apart from a new one; if it is new, allow an empty log explicitly.', this.#lineNumber + 1);
    }
    return { ok: true, count, lastSeq: this.#expectedSeq - 1, lastHash: this.#prevHash };
  }

  #break(seq: number, reason: AuditBreakReason, message: string, line = this.#lineNumber): AuditBreak {
    return { ok: false, count: this.#expectedSeq - this.#firstSeq, seq, line, reason, message };
  }

  #check(input: AuditLogLine, terminated: boolean): AuditBreak | undefined {
    const expected = this.#expectedSeq;
    const at = `line ${this.#lineNumber}`;
    if (!terminated) {
      return this.#break(expected, 'MALFORMED', `${at} is not terminated by a newline: a write was cut short (a crash?). The partial record is not trusted.`);
    }
    let line: string;
    if (typeof input === 'string') {
      line = input;
    } else {
      // At most 3 UTF-8 bytes per UTF-16 code unit: anything longer is over the limit anyway.
      if (input.length > 3 * AUDIT_LINE_MAX_LENGTH) return this.#break(expected, 'MALFORMED', `${at} is ${input.length} bytes long, above the limit of ${AUDIT_LINE_MAX_LENGTH} characters.`);
      try {
        line = strictUtf8.decode(input);
      } catch {
        return this.#break(expected, 'MALFORMED', `${at} is not valid UTF-8.`);
      }
    }
    if (line.trim() === '') return this.#break(expected, 'MALFORMED', `${at} is blank; the audit writer never writes blank lines.`);
    if (line.length > AUDIT_LINE_MAX_LENGTH) return this.#break(expected, 'MALFORMED', `${at} is ${line.length} characters long, above the limit of ${AUDIT_LINE_MAX_LENGTH}.`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      return this.#break(expected, 'MALFORMED', `${at} is not valid JSON (a partial or corrupted record).`);
    }
    if (!isObject(parsed)) return this.#break(expected, 'MALFORMED', `${at} is not a JSON object.`);
    let canonical: string;
    try {
      canonical = canonicalize(parsed);
    } catch (error) {
      if (!isDroverError(error)) throw error;
      return this.#break(expected, 'MALFORMED', `${at}: ${error.message}`);
    }
    const problem = shapeProblem(parsed);
    if (problem !== undefined) return this.#break(expected, 'MALFORMED', `${at}: ${problem}.`);
    const record = parsed as unknown as AuditRecord;
    // The writer writes canonical JSON; anything else (duplicate names, whitespace, escapes
    // spelt differently) means the line was edited, and a duplicate name could show a reader
    // something other than what was hashed.
    if (canonical !== line) return this.#break(record.seq, 'NOT_CANONICAL', `${at} is not in RFC 8785 canonical form, as the audit writer writes it: it was edited.`);
    // deletion, insertion, reordering: each record carries the next seq, without gaps or repeats.
    if (record.seq !== expected) {
      const why =
        record.seq > expected
          ? record.seq === expected + 1
            ? `record ${expected} is missing (deleted, or moved further down)`
            : `records ${expected} to ${record.seq - 1} are missing (deleted, or moved further down)`
          : `record ${record.seq} is repeated or out of place (inserted or moved up)`;
      return this.#break(record.seq, 'SEQ_OUT_OF_ORDER', `${at} holds seq ${record.seq} where seq ${expected} was expected: ${why}.`);
    }
    // A record links to the one before it, so a replaced or re-numbered predecessor shows here.
    if (record.prev !== this.#prevHash) {
      const before = expected === this.#firstSeq && this.#prevHash === AUDIT_GENESIS_HASH ? 'the start of the log (64 zeros)' : `record ${expected - 1} (${short(this.#prevHash)})`;
      return this.#break(record.seq, 'PREV_MISMATCH', `${at}: prev ${short(record.prev)} does not link to ${before}: a record before it was replaced or the log was spliced.`);
    }
    // modification: any change to a hashed field changes the hash.
    const hash = chainHash(canonicalize(hashedBody(parsed)), record.prev);
    if (toHex(hash) !== record.hash) {
      return this.#break(record.seq, 'HASH_MISMATCH', `${at}: the record's content does not match its hash ${short(record.hash)}: it was modified after it was written.`);
    }
    // forgery: a re-hashed record still needs a signature from a trusted audit key.
    const key = this.#signers.get(record.kid);
    if (key === undefined) {
      return this.#break(record.seq, 'UNKNOWN_SIGNER', `${at} is signed by kid ${quote(record.kid)}, which is not in the signers file. If it is a legitimate audit key, add its public key to signers.json.`);
    }
    const sig = fromBase64(record.sig);
    if (sig === undefined || !key.verify(hash, sig)) {
      return this.#break(record.seq, 'SIGNATURE_INVALID', `${at}: the signature does not verify with key ${quote(record.kid)}: the record was forged or re-hashed after a change.`);
    }
    this.#expectedSeq = expected + 1;
    this.#prevHash = record.hash;
    return undefined;
  }
}

/**
 * Verifies a whole audit log held in memory and reports the first broken record. A final line
 * without "\n" is a partial write (MALFORMED); blank lines are refused.
 *
 * @example
 * const verdict = verifyAuditLog(text, parseAuditSigners(signersJson));
 * if (!verdict.ok) console.error(`BROKEN at seq ${verdict.seq}: ${verdict.reason}: ${verdict.message}`);
 */
export function verifyAuditLog(text: string | Uint8Array, signers: AuditSignerKeys, options: VerifyAuditLogOptions = {}): AuditVerification {
  const verifier = new AuditLogVerifier(signers, options);
  if (text.length === 0) return verifier.result();
  const lines = typeof text === 'string' ? text.split('\n') : splitBytes(text);
  // After a final "\n" the split leaves an empty last element that is not a line; otherwise the
  // last element is a line that never got its newline.
  const terminated = lines[lines.length - 1]?.length === 0;
  if (terminated) lines.pop();
  for (let i = 0; i < lines.length; i += 1) {
    if (verifier.push(lines[i] ?? '', terminated || i < lines.length - 1) !== undefined) break;
  }
  return verifier.result();
}

function splitBytes(bytes: Uint8Array): Uint8Array[] {
  const lines: Uint8Array[] = [];
  let start = 0;
  for (let end = bytes.indexOf(0x0a); end !== -1; end = bytes.indexOf(0x0a, start)) {
    lines.push(bytes.subarray(start, end));
    start = end + 1;
  }
  lines.push(bytes.subarray(start));
  return lines;
}

/**
 * Verifies an audit log given line by line, so a large log is never one string. Lines come
 * without their "\n", as text or (better) as bytes; say whether the input ended with a "\n" in
 * `finalLineTerminated`. Stops reading at the first break.
 *
 * Split on "\n" alone: node:readline also splits on "\r" and drops it, which would let a log
 * edited to CRLF line ends verify.
 */
export async function verifyAuditLogLines(
  lines: Iterable<AuditLogLine> | AsyncIterable<AuditLogLine>,
  signers: AuditSignerKeys,
  options: VerifyAuditLinesOptions = {},
): Promise<AuditVerification> {
  const verifier = new AuditLogVerifier(signers, options);
  // One line of look-ahead: only the last line can be unterminated, and it is known to be the
  // last only once the input ends.
  let pending: AuditLogLine | undefined;
  // for-await takes sync iterables too; the cast only gives the loop variable its type.
  for await (const line of lines as AsyncIterable<AuditLogLine>) {
    if (pending !== undefined && verifier.push(pending) !== undefined) return verifier.result();
    pending = line;
  }
  if (pending !== undefined) verifier.push(pending, options.finalLineTerminated ?? true);
  return verifier.result();
}
