// The tamper-evident audit log: JSON Lines, each record hashed together with the previous record's
// hash and signed. Changing, deleting, inserting or reordering a record breaks the chain at that
// record; forging one needs an audit signing key. What a chain alone cannot show is the loss of
// records at the end of the log: compare the verified head (`lastSeq`, `lastHash`) with one kept
// elsewhere (a monitoring system, the manager's database) to detect that.
//
// Record = {seq, ts, event, actor, agentId?, deploymentId?, tokenId?, outcome, details, prev, hash, alg?, kid, sig}
//   hash = hex SHA-256( UTF-8(RFC 8785 canonical JSON of the record without prev, hash, alg, kid, sig) || prev hash bytes )
//   prev = hex of the previous record's hash; 64 zeros (32 zero bytes in the hash input) before the first record
//   alg  = how sig was made: ed25519, rsa-sha256 or hmac-sha256 (algorithms.ts); absent means ed25519
//   sig  = base64 of the signature (or MAC) over the 32 raw bytes of `hash`, by the key named `kid`
//   seq  = 1 for the first record, then +1 per record, no gaps
// Each line is the canonical JSON of the whole record followed by "\n". Fields other than
// prev/hash/alg/kid/sig (including any a later version adds) are covered by the hash.
//
// The modules of this folder do no I/O (@drover/protocol is pure): AuditChain (writer.ts) returns
// the line to append and the caller writes it (O_APPEND, one write, fsync); the verifiers
// (verifier.ts) take text or an iterable of lines. This file holds what both sides share: the
// record, its hash, and the rules a record's shape must follow.

import { concatBytes, fromBase64, fromHex, utf8 } from '../bytes.js';
import { canonicalize } from '../canonical-json.js';
import type { JsonObject } from '../canonical-json.js';
import { AuditError } from '../errors.js';
import { sha256 } from '../hash.js';
import { AUDIT_DEFAULT_ALGORITHM, isAuditAlgorithm, signatureLengthFits } from './algorithms.js';
import type { AuditAlgorithm } from './algorithms.js';

/** `prev` of the first record: the hash input then ends with 32 zero bytes. */
export const AUDIT_GENESIS_HASH = '0'.repeat(64);
/** `seq` of the first record. */
export const AUDIT_FIRST_SEQ = 1;
// A line longer than this is refused by the writer and the verifier alike, so a hostile log cannot
// make the verifier hold an unbounded string, and the writer never writes a line it would refuse.
export const AUDIT_LINE_MAX_LENGTH = 1024 * 1024; // UTF-16 code units of one line, without its "\n"

// Fields outside the hashed body: the chain link and the signature over the hash, with what names
// its key and algorithm (decision 0046: the digest signed is the same whatever signs it).
const UNHASHED_FIELDS: ReadonlySet<string> = new Set(['prev', 'hash', 'alg', 'kid', 'sig']);
export const HEX_HASH = /^[0-9a-f]{64}$/;
// kid: printable ASCII without spaces, so a key id (or a KMS key ARN) prints safely in any message.
export const KID = /^[\x21-\x7e]{1,256}$/;
// RFC 3339 date-time, as Date.prototype.toISOString writes it (and any offset).
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})$/;

/** One record of the audit log, as written and as verified. */
export interface AuditRecord {
  /** 1 for the first record, then +1 per record, no gaps. */
  seq: number;
  /** When, RFC 3339. */
  ts: string;
  /** What happened, e.g. `token.used`, `agent.enrolled`. */
  event: string;
  /** Who did it: an operator, `agent:<id>`, `system`. */
  actor: string;
  /** The agent concerned, if any. */
  agentId?: string;
  /** The deployment concerned, if any. */
  deploymentId?: string;
  /** The token used, by its id (never its value). */
  tokenId?: string;
  /** How it ended, e.g. `success`, `denied`. */
  outcome: string;
  /** Any JSON object; never a secret. */
  details: JsonObject;
  /** The previous record's hash; 64 zeros before the first record. */
  prev: string;
  /** Hex SHA-256 of the canonical JSON of the other fields (without prev, hash, alg, kid, sig) followed by the 32 bytes of `prev`. */
  hash: string;
  /** How `sig` was made; absent on records written before records named it, which are ed25519. */
  alg?: AuditAlgorithm;
  /** The signing key, as signers.json names it. */
  kid: string;
  /** Base64 of the signature (Ed25519, RSASSA-PKCS1-v1_5 SHA-256) or HMAC-SHA256 over the 32 bytes of `hash`. */
  sig: string;
}

/** The last record of a chain: the next record gets `seq + 1` and `prev = hash`. */
export interface AuditChainHead {
  /** The last record's seq. */
  seq: number;
  /** The last record's hash. */
  hash: string;
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// Quotes a value read from an untrusted log for a message: escaped (no terminal control
// characters) and bounded.
export function quote(value: unknown): string {
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

/** The hashed part of a record: every field except prev, hash, alg, kid and sig. */
export function hashedBody(record: object): Record<string, unknown> {
  return Object.fromEntries(Object.entries(record).filter(([name]) => !UNHASHED_FIELDS.has(name)));
}

export function chainHash(bodyCanonicalJson: string, prev: string): Uint8Array {
  const prevBytes = fromHex(prev);
  if (prevBytes?.length !== 32) throw new AuditError('AUDIT_RECORD_MALFORMED', `prev must be 64 lowercase hex characters, got ${quote(prev)}.`);
  return sha256(concatBytes(utf8(bodyCanonicalJson), prevBytes));
}

/**
 * The hash a record must carry: SHA-256 of the canonical JSON of its fields other than
 * prev/hash/alg/kid/sig, followed by the 32 bytes of its `prev`.
 */
export function auditRecordHash(record: AuditRecord | (Record<string, unknown> & { prev: string })): Uint8Array {
  return chainHash(canonicalize(hashedBody(record)), record.prev);
}

// The first thing wrong with the shape of a parsed record, or undefined. Shared by the verifier
// and by AuditChain.resume, so a chain never continues from a record the verifier would refuse.
export function shapeProblem(record: Record<string, unknown>): string | undefined {
  const { seq, ts, prev, hash, alg, kid, sig, details } = record;
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
  if (alg !== undefined && !isAuditAlgorithm(alg)) return `alg must be ed25519, rsa-sha256 or hmac-sha256 when present, got ${quote(alg)}`;
  const algorithm = alg ?? AUDIT_DEFAULT_ALGORITHM;
  const sigBytes = typeof sig === 'string' ? fromBase64(sig) : undefined;
  if (sigBytes === undefined || !signatureLengthFits(algorithm, sigBytes.length)) return `sig must be the base64 of an ${algorithm} signature, got ${quote(sig)}`;
  return undefined;
}

/** Why a log does not verify; stable strings, for scripts. */
export const auditBreakReasons = [
  'EMPTY',
  'MALFORMED',
  'NOT_CANONICAL',
  'SEQ_OUT_OF_ORDER',
  'PREV_MISMATCH',
  'HASH_MISMATCH',
  'UNKNOWN_SIGNER',
  'ALGORITHM_MISMATCH',
  'MAC_KEY_MISSING',
  'SIGNATURE_INVALID',
] as const;
/** Why a log does not verify: one of {@link auditBreakReasons}. */
export type AuditBreakReason = (typeof auditBreakReasons)[number];
