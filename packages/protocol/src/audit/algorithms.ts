// The algorithms an audit record may be signed with (decision 0046). Whatever the algorithm, what
// is signed is the same 32 bytes: the record's `hash`, SHA-256(canonical body || prev bytes).
//
//   ed25519      Ed25519 over the 32 bytes                          sig: 64 bytes
//   rsa-sha256   RSASSA-PKCS1-v1_5 with SHA-256 over the 32 bytes,  sig: the modulus length
//                RSA-2048 or longer (what `openssl dgst -sha256 -sign` makes, and KMS's
//                RSASSA_PKCS1_V1_5_SHA_256 with MessageType RAW)
//   hmac-sha256  HMAC-SHA256 keyed with a secret, over the 32 bytes  sig: 32 bytes
//
// A record names its algorithm in `alg` (absent on records written before there was a choice:
// ed25519). A verifier never lets the record choose how it is checked: the key named by `kid`
// has one algorithm, and a record whose `alg` differs is refused before any check, so a
// public RSA key can never be used as an HMAC secret, nor the other way round.

import { createHmac, createPublicKey, timingSafeEqual, verify as nodeVerify, constants } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { toBase64 } from '../bytes.js';
import { Ed25519PublicKey, SIGNATURE_LENGTH } from '../ed25519.js';
import { AuditError } from '../errors.js';

/** The algorithms an audit record may name in `alg`. */
export const auditAlgorithms = ['ed25519', 'rsa-sha256', 'hmac-sha256'] as const;
/** One of {@link auditAlgorithms}. */
export type AuditAlgorithm = (typeof auditAlgorithms)[number];

/** What a record without `alg` was signed with: every record before decision 0046. */
export const AUDIT_DEFAULT_ALGORITHM: AuditAlgorithm = 'ed25519';

export const RSA_MIN_BITS = 2048;
const RSA_MAX_BITS = 8192;
export const HMAC_SHA256_LENGTH = 32; // bytes of an HMAC-SHA256 tag
// A shorter HMAC key is weaker than the tag it makes (RFC 2104 section 3); AWS KMS HMAC_256 keys are 32 bytes.
export const HMAC_MIN_KEY_LENGTH = 32; // bytes

export function isAuditAlgorithm(value: unknown): value is AuditAlgorithm {
  return typeof value === 'string' && (auditAlgorithms as readonly string[]).includes(value);
}

/** The length a signature of `algorithm` may have, in bytes. */
export function signatureLengthFits(algorithm: AuditAlgorithm, length: number): boolean {
  switch (algorithm) {
    case 'ed25519':
      return length === SIGNATURE_LENGTH;
    case 'hmac-sha256':
      return length === HMAC_SHA256_LENGTH;
    case 'rsa-sha256':
      return length >= RSA_MIN_BITS / 8 && length <= RSA_MAX_BITS / 8;
  }
}

/** A key that verifies audit records signed with Ed25519. */
export interface Ed25519AuditKey {
  readonly algorithm: 'ed25519';
  readonly publicKey: Ed25519PublicKey;
}

/** A key that verifies audit records signed with rsa-sha256: an RSA public key of 2048 bits or more. */
export interface RsaAuditKey {
  readonly algorithm: 'rsa-sha256';
  /** DER of the SubjectPublicKeyInfo, as signers.json holds it in base64 (and KMS GetPublicKey returns it). */
  readonly spki: Uint8Array;
  /** The modulus length, in bits. */
  readonly bits: number;
}

/**
 * An HMAC-SHA256 audit key. signers.json lists its kid without the secret (a MAC key verifies
 * only in the hands of someone who could also forge with it); the verifier is given the secret
 * separately, or the holder of a secret that never leaves it (an AWS KMS HMAC key) checks each MAC
 * through `verifyMac`. With neither, records of this kid are reported MAC_KEY_MISSING.
 */
export interface HmacAuditKey {
  readonly algorithm: 'hmac-sha256';
  /** The secret, when the verifier has been given it. */
  readonly secret?: Uint8Array | undefined;
  /**
   * Asks the key's holder whether `mac` is the MAC of the 32-byte `hash` (KMS VerifyMac), for a
   * key whose secret the verifier cannot have. Used only without `secret`. It throws when the holder
   * could not be asked: that is no verdict on the record, and the verification stops with the error.
   */
  readonly verifyMac?: ((hash: Uint8Array, mac: Uint8Array) => boolean) | undefined;
}

/** A key a verifier checks audit records with. */
export type AuditVerifyKey = Ed25519AuditKey | RsaAuditKey | HmacAuditKey;

const rsaKeyObjects = new WeakMap<RsaAuditKey, KeyObject>();

/**
 * Reads an RSA public key (DER SubjectPublicKeyInfo, or its PEM) for rsa-sha256 audit records.
 * Throws AuditError `AUDIT_SIGNERS_INVALID` for anything but an RSA key of 2048 to 8192 bits.
 */
export function rsaAuditKey(spkiOrPem: Uint8Array | string): RsaAuditKey {
  let key: KeyObject;
  try {
    key = typeof spkiOrPem === 'string' ? createPublicKey(spkiOrPem) : createPublicKey({ key: Buffer.from(spkiOrPem), format: 'der', type: 'spki' });
  } catch (error) {
    throw new AuditError('AUDIT_SIGNERS_INVALID', 'The rsa-sha256 public key is not a DER SubjectPublicKeyInfo (or its PEM). Export it with `openssl pkey -pubout` or KMS GetPublicKey.', { cause: error });
  }
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (key.asymmetricKeyType !== 'rsa' || bits < RSA_MIN_BITS || bits > RSA_MAX_BITS) {
    throw new AuditError('AUDIT_SIGNERS_INVALID', `An rsa-sha256 audit key must be an RSA key of ${RSA_MIN_BITS} to ${RSA_MAX_BITS} bits, got ${key.asymmetricKeyType ?? 'an unknown type'}${bits > 0 ? ` of ${bits} bits` : ''}.`);
  }
  const result: RsaAuditKey = { algorithm: 'rsa-sha256', spki: new Uint8Array(key.export({ format: 'der', type: 'spki' })), bits };
  rsaKeyObjects.set(result, key);
  return result;
}

/** An HMAC-SHA256 audit key from its secret (at least 32 bytes). Throws AuditError `AUDIT_SIGNERS_INVALID` for a shorter one. */
export function hmacAuditKey(secret: Uint8Array): HmacAuditKey {
  if (secret.length < HMAC_MIN_KEY_LENGTH) {
    throw new AuditError('AUDIT_SIGNERS_INVALID', `An hmac-sha256 audit key must be at least ${HMAC_MIN_KEY_LENGTH} bytes, got ${secret.length}. Generate one with \`openssl rand -base64 32\`.`);
  }
  return { algorithm: 'hmac-sha256', secret: new Uint8Array(secret) };
}

/** The key of a kid as the verifier uses it: a bare Ed25519 public key (what older callers pass) counts as an ed25519 key. */
export function asAuditVerifyKey(key: AuditVerifyKey | Ed25519PublicKey): AuditVerifyKey {
  return key instanceof Ed25519PublicKey ? { algorithm: 'ed25519', publicKey: key } : key;
}

/** The HMAC-SHA256 tag of `hash` under `secret`. */
export function hmacSha256(secret: Uint8Array, hash: Uint8Array): Uint8Array {
  return new Uint8Array(createHmac('sha256', secret).update(hash).digest());
}

/**
 * True when `sig` is a valid signature (or MAC) of the 32-byte `hash` by `key`. Never throws, but
 * for an HMAC key's `verifyMac` that could not reach the key's holder. An HMAC key with neither its
 * secret nor `verifyMac` verifies nothing.
 */
export function verifyAuditSignature(key: AuditVerifyKey, hash: Uint8Array, sig: Uint8Array): boolean {
  switch (key.algorithm) {
    case 'ed25519':
      return key.publicKey.verify(hash, sig);
    case 'rsa-sha256': {
      // A key made elsewhere than rsaAuditKey (a plain object) is read, and so checked, here.
      const object = rsaKeyObjects.get(key) ?? rsaKeyObjects.get(rsaAuditKey(key.spki));
      if (object === undefined) return false;
      // A PKCS#1 v1.5 signature is exactly as long as the modulus.
      if (sig.length !== Math.ceil(key.bits / 8)) return false;
      try {
        return nodeVerify('sha256', hash, { key: object, padding: constants.RSA_PKCS1_PADDING }, sig);
      } catch {
        return false;
      }
    }
    case 'hmac-sha256': {
      if (sig.length !== HMAC_SHA256_LENGTH) return false;
      // constant time: a MAC compared byte by byte leaks how much of a forgery was right.
      if (key.secret !== undefined) return timingSafeEqual(hmacSha256(key.secret, hash), sig);
      return key.verifyMac?.(hash, sig) === true;
    }
  }
}

/** True when two keys are the same key (for an HMAC key, the same secret or both without one). */
export function sameAuditKey(a: AuditVerifyKey, b: AuditVerifyKey): boolean {
  if (a.algorithm === 'ed25519' && b.algorithm === 'ed25519') return a.publicKey.equals(b.publicKey);
  if (a.algorithm === 'rsa-sha256' && b.algorithm === 'rsa-sha256') return toBase64(a.spki) === toBase64(b.spki);
  if (a.algorithm === 'hmac-sha256' && b.algorithm === 'hmac-sha256') {
    // A key checked by its holder (verifyMac) is known by its kid alone, as a key without a secret.
    if (a.secret === undefined || b.secret === undefined) return a.secret === b.secret;
    return a.secret.length === b.secret.length && timingSafeEqual(a.secret, b.secret);
  }
  return false;
}

