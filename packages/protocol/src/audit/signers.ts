// Who may sign audit records: the AuditSigner interface the writer signs with, and signers.json,
// the public keys a verifier accepts.

import { fromBase64 } from '../bytes.js';
import { Ed25519PublicKey } from '../ed25519.js';
import type { Ed25519Signer } from '../ed25519.js';
import { AuditError } from '../errors.js';
import type { AuditSignersDocument } from '../schemas/audit.js';
import { isObject, KID, quote } from './record.js';

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
export function ed25519AuditSigner(key: Ed25519Signer): AuditSigner {
  return { kid: key.keyid, sign: (bytes) => key.sign(bytes) };
}

/** One entry of signers.json: a kid, `ed25519`, and the base64 of the raw 32-byte public key. */
type AuditSignerEntry = AuditSignersDocument['signers'][number];

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
