// The audit log's verifier: checks every record's shape, seq, link, hash and signature, and
// reports the first break. What a chain alone cannot show is the loss of records at the end of the
// log: compare the verified head (`lastSeq`, `lastHash`) with one kept elsewhere.

import { fromBase64, toHex } from '../bytes.js';
import { canonicalize } from '../canonical-json.js';
import { AuditError, isDroverError } from '../errors.js';
import { AUDIT_FIRST_SEQ, AUDIT_GENESIS_HASH, AUDIT_LINE_MAX_LENGTH, chainHash, hashedBody, HEX_HASH, isObject, quote, shapeProblem } from './record.js';
import type { AuditBreakReason, AuditChainHead, AuditRecord } from './record.js';
import { AUDIT_DEFAULT_ALGORITHM, asAuditVerifyKey, verifyAuditSignature } from './algorithms.js';
import type { AuditVerifyKey } from './algorithms.js';
import type { AuditSignerKeys } from './signers.js';

// fatal: invalid UTF-8 is an error, not U+FFFD; ignoreBOM: a BOM stays in the text (and is refused).
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function short(hash: string): string {
  return `${hash.slice(0, 16)}...`;
}

/** The first broken record: `count` records before it verified. */
export interface AuditBreak {
  /** Always false: the log does not verify. */
  ok: false;
  /** Records verified before the broken one. */
  count: number;
  /** The broken record's own seq when it has a valid one, else the seq expected at its position. */
  seq: number;
  /** 1-based line number in the log. */
  line: number;
  /** The rule the record broke, a stable string. */
  reason: AuditBreakReason;
  /** What is wrong, for a person; the record's values in it are quoted and bounded. */
  message: string;
}

/** A log that verified from its first record to its last. */
export interface AuditIntact {
  /** Always true: every record verified. */
  ok: true;
  /** Records verified. */
  count: number;
  /** The head of the verified chain (0 and 64 zeros for an empty log): compare it with a copy kept elsewhere to detect a truncated tail. */
  lastSeq: number;
  /** The hash of the last record (64 zeros for an empty log). */
  lastHash: string;
}

/** The verdict on a log: intact (`ok: true`), or the first broken record (`ok: false`). */
export type AuditVerification = AuditIntact | AuditBreak;

/** Options of {@link verifyAuditLog}. */
export interface VerifyAuditLogOptions {
  /** Accept a log with no records (default false: a log truncated to nothing looks like a new one). */
  allowEmpty?: boolean;
  /** Verify a segment of a rotated log that continues after this record. */
  after?: AuditChainHead;
}

/** Options of {@link verifyAuditLogLines}. */
export interface VerifyAuditLinesOptions extends VerifyAuditLogOptions {
  /** Whether the input ended with a newline (default true). If false, the last line is a partial write. */
  finalLineTerminated?: boolean;
}

/** A line of the log as text, or as its raw bytes (UTF-8, decoded strictly). */
export type AuditLogLine = string | Uint8Array;

/**
 * Checks audit log lines one at a time and remembers the first break. Feed it every line (without
 * its newline), then call `result()`. Blank lines are refused: the writer never writes one, and every
 * byte of the log must be accounted for by a hash. Give it bytes rather than text decoded by a
 * lenient decoder: invalid UTF-8 is refused here, where a lenient decoder would have turned it
 * into U+FFFD and let an edited byte pass.
 */
export class AuditLogVerifier {
  readonly #signers: ReadonlyMap<string, AuditVerifyKey>;
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
    this.#signers = new Map([...signers].map(([kid, key]) => [kid, asAuditVerifyKey(key)]));
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
   * Checks the next line. `terminated` is false only for a last line that had no newline after it.
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
    // algorithm confusion: the key decides how a record is checked, never the record. A record
    // whose alg differs from its key's was edited (or signed by another key under a reused kid).
    const alg = record.alg ?? AUDIT_DEFAULT_ALGORITHM;
    if (alg !== key.algorithm) {
      return this.#break(record.seq, 'ALGORITHM_MISMATCH', `${at} says it is signed with ${alg}, but key ${quote(record.kid)} is an ${key.algorithm} key in the signers file: the record was edited, or the kid was reused for another key.`);
    }
    if (key.algorithm === 'hmac-sha256' && key.secret === undefined && key.verifyMac === undefined) {
      return this.#break(record.seq, 'MAC_KEY_MISSING', `${at} is MACed with the hmac-sha256 key ${quote(record.kid)}, whose secret the verifier was not given. Pass it with --hmac-key-file, or name the AWS KMS key or PKCS#11 token key that holds it with --hmac-kms or --hmac-pkcs11.`);
    }
    const sig = fromBase64(record.sig);
    if (sig === undefined || !verifyAuditSignature(key, hash, sig)) {
      return this.#break(record.seq, 'SIGNATURE_INVALID', `${at}: the ${alg} signature does not verify with key ${quote(record.kid)}: the record was forged or re-hashed after a change.`);
    }
    this.#expectedSeq = expected + 1;
    this.#prevHash = record.hash;
    return undefined;
  }
}

/**
 * Verifies a whole audit log held in memory and reports the first broken record. A final line
 * without a newline is a partial write (MALFORMED); blank lines are refused.
 *
 * @example
 * ```ts
 * const verdict = verifyAuditLog(text, parseAuditSigners(signersJson));
 * if (!verdict.ok) console.error(`BROKEN at seq ${verdict.seq}: ${verdict.reason}: ${verdict.message}`);
 * ```
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
 * without their newline, as text or (better) as bytes; say whether the input ended with a newline
 * in `finalLineTerminated`. Stops reading at the first break.
 *
 * Split on `\n` alone: node:readline also splits on `\r` and drops it, which would let a log
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
