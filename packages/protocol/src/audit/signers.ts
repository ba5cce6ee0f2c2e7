// Who may sign audit records: the AuditSigner interface the writer signs with, local signers for
// each algorithm, signers.json (the public keys a verifier accepts) and the HMAC key file a
// verifier is given for hmac-sha256 records.

import { createHmac, createPrivateKey, createPublicKey, sign as nodeSign, constants } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { fromBase64, toBase64 } from '../bytes.js';
import { Ed25519PublicKey } from '../ed25519.js';
import type { Ed25519Signer } from '../ed25519.js';
import { AuditError } from '../errors.js';
import { shortId } from '../hash.js';
import type { AuditSignersDocument } from '../schemas/audit.js';
import { asAuditVerifyKey, hmacAuditKey, isAuditAlgorithm, rsaAuditKey } from './algorithms.js';
import type { AuditAlgorithm, AuditVerifyKey, HmacAuditKey, RsaAuditKey } from './algorithms.js';
import { isObject, KID, quote } from './record.js';

/**
 * Signs the 32-byte hash of each audit record. Implement it over a KMS or an HSM to keep the audit
 * key out of the manager's memory; {@link ed25519AuditSigner} makes one from a local key.
 */
export interface AuditSigner {
  /** Names the key in each record; signers.json maps it to the public key. */
  readonly kid: string;
  /** What `sign` makes, written in each record's `alg` (default `ed25519`). */
  readonly algorithm?: AuditAlgorithm;
  /** Returns the signature (or HMAC) of `bytes`: 64 bytes for Ed25519, the modulus length for RSA, 32 for HMAC-SHA256. */
  sign(bytes: Uint8Array): Uint8Array | Promise<Uint8Array>;
}

/** An {@link AuditSigner} over a local Ed25519 key; its kid is the key's id. */
export function ed25519AuditSigner(key: Ed25519Signer): AuditSigner {
  return { kid: key.keyid, algorithm: 'ed25519', sign: (bytes) => key.sign(bytes) };
}

/**
 * An rsa-sha256 {@link AuditSigner} over a local RSA private key (PEM, or a KeyObject) of 2048
 * bits or more, with the public key for signers.json. Its kid defaults to the first 16 hex of the
 * SHA-256 of the public key's DER.
 */
export function rsaAuditSigner(privateKey: string | Uint8Array | KeyObject, kid?: string): { signer: AuditSigner; key: RsaAuditKey } {
  let object: KeyObject;
  try {
    object = typeof privateKey === 'object' && !(privateKey instanceof Uint8Array) ? privateKey : createPrivateKey(typeof privateKey === 'string' ? privateKey : Buffer.from(privateKey));
  } catch (error) {
    throw new AuditError('AUDIT_SIGNERS_INVALID', 'The rsa-sha256 audit key is not a PEM private key. Make one with `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`.', { cause: error });
  }
  if (object.type !== 'private') throw new AuditError('AUDIT_SIGNERS_INVALID', 'The rsa-sha256 audit key must be a private key.');
  const key = rsaAuditKey(new Uint8Array(createPublicKey(object).export({ format: 'der', type: 'spki' })));
  const signer: AuditSigner = {
    kid: kid ?? shortId(key.spki),
    algorithm: 'rsa-sha256',
    sign: (bytes) => new Uint8Array(nodeSign('sha256', bytes, { key: object, padding: constants.RSA_PKCS1_PADDING })),
  };
  return { signer, key };
}

/**
 * An hmac-sha256 {@link AuditSigner} over a local secret (32 bytes or more). Its kid defaults to
 * the first 16 hex of the secret's SHA-256. The key for a verifier is the secret itself: give it
 * to `drover audit verify --hmac-key-file`, never to signers.json.
 */
export function hmacAuditSigner(secret: Uint8Array, kid?: string): { signer: AuditSigner; key: HmacAuditKey } {
  const key = hmacAuditKey(secret);
  const copy = key.secret ?? secret;
  const signer: AuditSigner = { kid: kid ?? shortId(copy), algorithm: 'hmac-sha256', sign: (bytes) => new Uint8Array(createHmac('sha256', copy).update(bytes).digest()) };
  return { signer, key };
}

/** One entry of signers.json. */
type AuditSignerEntry = AuditSignersDocument['signers'][number];

/** Keys by kid, as verifiers take them; a bare Ed25519 public key counts as an ed25519 key. */
export type AuditSignerKeys = ReadonlyMap<string, AuditVerifyKey | Ed25519PublicKey>;

const SIGNERS_SHAPE =
  'Expected {"signers":[{"kid":"...","algorithm":"ed25519","publicKey":"<base64 of 32 bytes>"}, {"kid":"...","algorithm":"rsa-sha256","publicKey":"<base64 of the DER SubjectPublicKeyInfo>"}, {"kid":"...","algorithm":"hmac-sha256"}]}.';

function signersInvalid(message: string, cause?: unknown): AuditError {
  return new AuditError('AUDIT_SIGNERS_INVALID', `${message} ${SIGNERS_SHAPE}`, cause === undefined ? undefined : { cause });
}

function parseJson(input: unknown, invalid: (message: string, cause?: unknown) => AuditError, what: string): unknown {
  if (typeof input !== 'string') return input;
  try {
    return JSON.parse(input) as unknown;
  } catch (error) {
    throw invalid(`The ${what} is not JSON.`, error);
  }
}

/**
 * Reads signers.json (its text, or the parsed value). Throws AuditError `AUDIT_SIGNERS_INVALID`
 * for anything but a non-empty list of distinct kids, each with its algorithm and (for ed25519 and
 * rsa-sha256) its public key; an hmac-sha256 kid is listed without its secret, which the verifier
 * is given apart ({@link parseAuditHmacKeys}). Unknown fields are refused too, so a misspelt or
 * unsupported setting is not silently ignored.
 */
export function parseAuditSigners(input: unknown): ReadonlyMap<string, AuditVerifyKey> {
  const document = parseJson(input, signersInvalid, 'signers file');
  if (!isObject(document) || !Array.isArray(document['signers'])) throw signersInvalid('The signers file has no "signers" list.');
  const extra = Object.keys(document).filter((name) => name !== 'signers');
  if (extra.length > 0) throw signersInvalid(`The signers file has unknown field(s) ${extra.map(quote).join(', ')}.`);
  const signers: unknown[] = document['signers'];
  if (signers.length === 0) throw signersInvalid('The signers list is empty, so no record could verify.');
  const keys = new Map<string, AuditVerifyKey>();
  signers.forEach((entry, index) => {
    const where = `signers[${index}]`;
    if (!isObject(entry)) throw signersInvalid(`${where} is not an object.`);
    const { kid, algorithm, publicKey } = entry;
    const allowed = algorithm === 'hmac-sha256' ? ['kid', 'algorithm'] : ['kid', 'algorithm', 'publicKey'];
    const unknown = Object.keys(entry).filter((name) => !allowed.includes(name));
    if (unknown.length > 0) {
      const secret = algorithm === 'hmac-sha256' ? ' An hmac-sha256 key is never published: give it to the verifier apart.' : '';
      throw signersInvalid(`${where} has unknown field(s) ${unknown.map(quote).join(', ')}.${secret}`);
    }
    if (typeof kid !== 'string' || !KID.test(kid)) throw signersInvalid(`${where}.kid must be 1-256 printable ASCII characters without spaces.`);
    if (!isAuditAlgorithm(algorithm)) throw signersInvalid(`${where}.algorithm must be "ed25519", "rsa-sha256" or "hmac-sha256", got ${quote(algorithm)}.`);
    if (keys.has(kid)) throw signersInvalid(`kid ${quote(kid)} is listed twice.`);
    const raw = typeof publicKey === 'string' ? fromBase64(publicKey) : undefined;
    switch (algorithm) {
      case 'ed25519':
        if (raw?.length !== 32) throw signersInvalid(`${where}.publicKey must be the base64 of a raw 32-byte Ed25519 public key.`);
        keys.set(kid, { algorithm, publicKey: new Ed25519PublicKey(raw) });
        break;
      case 'rsa-sha256':
        if (raw === undefined) throw signersInvalid(`${where}.publicKey must be the base64 of an RSA public key's DER SubjectPublicKeyInfo.`);
        try {
          keys.set(kid, rsaAuditKey(raw));
        } catch (error) {
          throw signersInvalid(`${where}.publicKey is not an RSA public key of 2048 bits or more.`, error);
        }
        break;
      case 'hmac-sha256':
        keys.set(kid, { algorithm });
        break;
    }
  });
  return keys;
}

function macKeysInvalid(message: string, cause?: unknown): AuditError {
  // Never quotes a value of the file: it holds secrets.
  return new AuditError('AUDIT_MAC_KEYS_INVALID', `${message} Expected {"keys":[{"kid":"...","key":"<base64 of 32 bytes or more>"}]}.`, cause === undefined ? undefined : { cause });
}

/**
 * Reads the file of HMAC secrets a verifier is given for hmac-sha256 records:
 * `{"keys":[{"kid":"...","key":"<base64>"}]}`. Throws AuditError `AUDIT_MAC_KEYS_INVALID`
 * (whose message never holds a secret) for anything else, or a key shorter than 32 bytes.
 */
export function parseAuditHmacKeys(input: unknown): ReadonlyMap<string, HmacAuditKey> {
  const document = parseJson(input, macKeysInvalid, 'HMAC key file');
  if (!isObject(document) || !Array.isArray(document['keys']) || Object.keys(document).length !== 1) throw macKeysInvalid('The HMAC key file has no "keys" list, or other fields beside it.');
  const entries: unknown[] = document['keys'];
  if (entries.length === 0) throw macKeysInvalid('The HMAC key list is empty.');
  const keys = new Map<string, HmacAuditKey>();
  entries.forEach((entry, index) => {
    const where = `keys[${index}]`;
    if (!isObject(entry) || Object.keys(entry).some((name) => name !== 'kid' && name !== 'key')) throw macKeysInvalid(`${where} must hold "kid" and "key" only.`);
    const { kid, key } = entry;
    if (typeof kid !== 'string' || !KID.test(kid)) throw macKeysInvalid(`${where}.kid must be 1-256 printable ASCII characters without spaces.`);
    if (keys.has(kid)) throw macKeysInvalid(`kid ${quote(kid)} is listed twice.`);
    const secret = typeof key === 'string' ? fromBase64(key) : undefined;
    if (secret === undefined) throw macKeysInvalid(`${where}.key must be base64.`);
    try {
      keys.set(kid, hmacAuditKey(secret));
    } catch (error) {
      throw macKeysInvalid(`${where}.key is too short.`, error);
    }
  });
  return keys;
}

/**
 * The keys of signers.json with the HMAC secrets a verifier was given. A kid signers.json lists
 * with another algorithm is refused (AUDIT_MAC_KEYS_INVALID): a public key's bytes must never
 * become a MAC secret. A kid it does not list is added: the verifier was handed that key.
 */
export function withAuditHmacKeys(signers: AuditSignerKeys, hmacKeys: ReadonlyMap<string, HmacAuditKey>): ReadonlyMap<string, AuditVerifyKey> {
  const keys = new Map<string, AuditVerifyKey>([...signers].map(([kid, key]) => [kid, asAuditVerifyKey(key)]));
  for (const [kid, key] of hmacKeys) {
    const listed = keys.get(kid);
    if (listed !== undefined && listed.algorithm !== 'hmac-sha256') {
      throw macKeysInvalid(`kid ${quote(kid)} is an ${listed.algorithm} key in signers.json, not an hmac-sha256 key.`);
    }
    keys.set(kid, key);
  }
  return keys;
}

function entryOf(kid: string, key: AuditVerifyKey): AuditSignerEntry {
  switch (key.algorithm) {
    case 'ed25519':
      return { kid, algorithm: 'ed25519', publicKey: key.publicKey.toBase64() };
    case 'rsa-sha256':
      return { kid, algorithm: 'rsa-sha256', publicKey: toBase64(key.spki) };
    case 'hmac-sha256':
      // The secret never goes into signers.json, which is published.
      return { kid, algorithm: 'hmac-sha256' };
  }
}

/**
 * Builds signers.json from keys; an Ed25519 key's kid defaults to its key id (what
 * {@link ed25519AuditSigner} uses). Write it with `JSON.stringify(document, null, 2)`.
 */
export function buildAuditSigners(keys: Iterable<Ed25519PublicKey | { kid: string; publicKey: Ed25519PublicKey | AuditVerifyKey }>): AuditSignersDocument {
  const signers = [...keys].map((key): AuditSignerEntry => {
    if (key instanceof Ed25519PublicKey) return entryOf(key.keyid, asAuditVerifyKey(key));
    return entryOf(key.kid, asAuditVerifyKey(key.publicKey));
  });
  // Round-trip through the parser so a builder can never write a file the parser refuses.
  parseAuditSigners({ signers });
  return { signers };
}

