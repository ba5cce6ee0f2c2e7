import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign as nodeSign, verify as nodeVerify } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { inspect } from 'node:util';
import nacl from 'tweetnacl';
import { fromBase64, fromBase64Url, fromHex, toBase64 } from './bytes.js';
import { CryptoError } from './errors.js';
import { shortId } from './hash.js';

/**
 * One Ed25519 implementation: node:crypto (fast) or tweetnacl (portable, and the cross-check).
 * The keys' `sign` and `verify` take one as an optional last argument; the default is node:crypto
 * where the runtime has Ed25519, else tweetnacl.
 */
export interface Ed25519Implementation {
  /** Which implementation this is. */
  readonly name: 'node:crypto' | 'tweetnacl';
  /** The raw 32-byte public key of a 32-byte seed. */
  publicKeyFromSeed(seed: Uint8Array): Uint8Array;
  /** The 64-byte signature of `message` by the key of `seed`. */
  sign(seed: Uint8Array, message: Uint8Array): Uint8Array;
  /** True when `signature` is a valid, canonical signature of `message` by `publicKey`; never throws. */
  verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean;
}

// DER prefixes of the PKCS#8 private key and SPKI public key structures for Ed25519 (RFC 8410).
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export const SEED_LENGTH = 32; // bytes
export const PUBLIC_KEY_LENGTH = 32; // bytes
export const SIGNATURE_LENGTH = 64; // bytes

function nativePrivateKey(seed: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
}

function nativePublicKey(publicKey: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' });
}

// Ed25519's group order L, little-endian: the S half of a signature must be below it (RFC 8032 5.1.7).
const GROUP_ORDER_LE = Buffer.from('edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010', 'hex');

// malleability: tweetnacl does not check S < L, so S + L would verify as a second signature of the
// same message; node:crypto refuses it, and the two implementations must agree.
function canonicalS(signature: Uint8Array): boolean {
  for (let i = SIGNATURE_LENGTH - 1; i >= 32; i -= 1) {
    const s = signature[i] ?? 0;
    const l = GROUP_ORDER_LE[i - 32] ?? 0;
    if (s !== l) return s < l;
  }
  return false; // S == L
}

export const tweetnaclEd25519: Ed25519Implementation = {
  name: 'tweetnacl',
  publicKeyFromSeed: (seed) => nacl.sign.keyPair.fromSeed(seed).publicKey,
  sign: (seed, message) => nacl.sign.detached(message, nacl.sign.keyPair.fromSeed(seed).secretKey),
  verify: (publicKey, message, signature) =>
    signature.length === SIGNATURE_LENGTH && canonicalS(signature) && nacl.sign.detached.verify(message, signature, publicKey),
};

export const nativeEd25519: Ed25519Implementation = {
  name: 'node:crypto',
  publicKeyFromSeed: (seed) => {
    const der = createPublicKey(nativePrivateKey(seed)).export({ format: 'der', type: 'spki' });
    return new Uint8Array(der.subarray(SPKI_PREFIX.length));
  },
  sign: (seed, message) => new Uint8Array(nodeSign(null, message, nativePrivateKey(seed))),
  verify: (publicKey, message, signature) => {
    if (signature.length !== SIGNATURE_LENGTH) return false;
    try {
      return nodeVerify(null, message, nativePublicKey(publicKey), signature);
    } catch {
      return false;
    }
  },
};

function nativeAvailable(): boolean {
  try {
    generateKeyPairSync('ed25519');
    return true;
  } catch {
    return false;
  }
}

/** node:crypto where the runtime has Ed25519, else tweetnacl. */
export const defaultEd25519: Ed25519Implementation = nativeAvailable() ? nativeEd25519 : tweetnaclEd25519;

/** The id of a public key: the first 16 hex of the SHA-256 of its raw 32 bytes. */
export function keyIdOf(publicKey: Uint8Array): string {
  return shortId(publicKey);
}

// Exactly one PEM block and nothing else, strict base64 inside: a key file must mean one thing.
function pemBody(text: string, label: string): Uint8Array | undefined {
  const match = new RegExp(`^-----BEGIN ${label}-----\\r?\\n([A-Za-z0-9+/=\\r\\n]+)-----END ${label}-----$`).exec(text.trim());
  return match?.[1] === undefined ? undefined : fromBase64(match[1].replace(/\r?\n/g, ''));
}

function toPem(der: Buffer, label: string): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

function decodeKeyText(text: string): Uint8Array | undefined {
  const trimmed = text.trim();
  // 64 or 128 hex digits are also valid base64 (of 48 or 96 bytes, never a key): read them as hex.
  if (/^(?:[0-9a-fA-F]{64}|[0-9a-fA-F]{128})$/.test(trimmed)) return fromHex(trimmed);
  return fromBase64(trimmed) ?? fromBase64Url(trimmed);
}

/** An Ed25519 public key. Accepts raw 32 bytes, base64/base64url/hex of them, or an SPKI PEM. */
export class Ed25519PublicKey {
  /** The raw 32-byte key. */
  readonly raw: Uint8Array;
  /** The key's id, as trust policies and signatures name it: the first 16 hex of the SHA-256 of {@link Ed25519PublicKey.raw}. */
  readonly keyid: string;
  #native: KeyObject | undefined;

  /** A key from its raw 32 bytes; throws CryptoError `KEY_INVALID` for any other length. */
  constructor(raw: Uint8Array) {
    if (raw.length !== PUBLIC_KEY_LENGTH) {
      throw new CryptoError('KEY_INVALID', `An Ed25519 public key is ${PUBLIC_KEY_LENGTH} bytes, got ${raw.length}. Check that the file holds a public key.`);
    }
    this.raw = new Uint8Array(raw);
    this.keyid = keyIdOf(this.raw);
  }

  /**
   * Reads a public key: raw 32 bytes, their base64, base64url or hex, or an SPKI PEM
   * (`drover keygen`'s `.pub`, `openssl pkey -pubout`). Throws CryptoError `KEY_INVALID` for
   * anything else, a private key included.
   */
  static from(input: Uint8Array | string): Ed25519PublicKey {
    if (typeof input !== 'string') {
      const text = Buffer.from(input).toString('utf8');
      return input.length === PUBLIC_KEY_LENGTH && !/-----BEGIN/.test(text) ? new Ed25519PublicKey(input) : Ed25519PublicKey.from(text);
    }
    if (input.includes('-----BEGIN')) {
      if (input.includes('PRIVATE KEY')) {
        throw new CryptoError('KEY_INVALID', 'Expected a public key but got a private key. Pass the .pub file, never the .key file.');
      }
      const der = pemBody(input, 'PUBLIC KEY');
      if (der?.length !== SPKI_PREFIX.length + PUBLIC_KEY_LENGTH || !SPKI_PREFIX.equals(der.subarray(0, SPKI_PREFIX.length))) {
        throw new CryptoError('KEY_INVALID', 'The PEM text is not an Ed25519 SubjectPublicKeyInfo. Export the key with `openssl pkey -pubout` or `drover keygen`.');
      }
      return new Ed25519PublicKey(der.subarray(SPKI_PREFIX.length));
    }
    const raw = decodeKeyText(input);
    if (raw === undefined) {
      throw new CryptoError('KEY_INVALID', 'The public key is neither PEM nor base64, base64url or hex of 32 bytes.');
    }
    return new Ed25519PublicKey(raw);
  }

  /** Verifies `signature` over `message`; false (never a throw) for any bad signature. */
  verify(message: Uint8Array, signature: Uint8Array, implementation: Ed25519Implementation = defaultEd25519): boolean {
    if (implementation === nativeEd25519 && signature.length === SIGNATURE_LENGTH) {
      try {
        this.#native ??= nativePublicKey(this.raw);
        return nodeVerify(null, message, this.#native, signature);
      } catch {
        return false;
      }
    }
    return implementation.verify(this.raw, message, signature);
  }

  /** Base64 of the raw 32 bytes, as trust.json and the enrollment response carry it. */
  toBase64(): string {
    return toBase64(this.raw);
  }

  /** The key as an SPKI PEM (`-----BEGIN PUBLIC KEY-----`). */
  toPem(): string {
    return toPem(Buffer.concat([SPKI_PREFIX, this.raw]), 'PUBLIC KEY');
  }

  /** True when `other` is the same key. */
  equals(other: Ed25519PublicKey): boolean {
    return Buffer.from(this.raw).equals(other.raw);
  }
}

/**
 * Anything that makes drover's Ed25519 signatures: a local {@link Ed25519PrivateKey}, or a key held
 * by a device that never hands it out (an HSM through PKCS#11). Every signing function of drover
 * (releases, update nonces, minisign, audit records) takes one, so each verifier accepts what any
 * backend signed: a raw 64-byte Ed25519 signature (RFC 8032).
 */
export interface Ed25519Signer {
  /** The id of {@link Ed25519Signer.publicKey}. */
  readonly keyid: string;
  /** The public half, for trust policies and signers.json. */
  readonly publicKey: Ed25519PublicKey;
  /** The 64-byte Ed25519 signature of `message`. */
  sign(message: Uint8Array): Uint8Array;
}

/**
 * An Ed25519 private key (a 32-byte seed). It never prints itself: `toJSON` and `inspect` show
 * only the key id, so a key cannot reach a log by accident.
 */
export class Ed25519PrivateKey {
  /** The matching public key. */
  readonly publicKey: Ed25519PublicKey;
  readonly #seed: Uint8Array;
  #native: KeyObject | undefined;

  /** A key from its 32-byte seed; throws CryptoError `KEY_INVALID` for any other length. */
  constructor(seed: Uint8Array, implementation: Ed25519Implementation = defaultEd25519) {
    if (seed.length !== SEED_LENGTH) {
      throw new CryptoError('KEY_INVALID', `An Ed25519 private key seed is ${SEED_LENGTH} bytes, got ${seed.length}.`);
    }
    this.#seed = new Uint8Array(seed);
    this.publicKey = new Ed25519PublicKey(implementation.publicKeyFromSeed(this.#seed));
  }

  /** A new random key. */
  static generate(): Ed25519PrivateKey {
    return new Ed25519PrivateKey(randomBytes(SEED_LENGTH));
  }

  /**
   * Accepts a PKCS#8 PEM (`drover keygen`, `openssl genpkey -algorithm ed25519`), or base64 /
   * base64url / hex of the 32-byte seed or of tweetnacl's 64-byte secret key (seed || public key).
   */
  static from(input: Uint8Array | string): Ed25519PrivateKey {
    if (typeof input !== 'string') {
      if (input.length === SEED_LENGTH) return new Ed25519PrivateKey(input);
      return Ed25519PrivateKey.from(Buffer.from(input).toString('utf8'));
    }
    if (input.includes('-----BEGIN')) {
      const der = pemBody(input, 'PRIVATE KEY');
      if (der?.length !== PKCS8_PREFIX.length + SEED_LENGTH || !PKCS8_PREFIX.equals(der.subarray(0, PKCS8_PREFIX.length))) {
        throw new CryptoError('KEY_INVALID', 'The PEM text is not an unencrypted Ed25519 PKCS#8 private key. Create one with `drover keygen`.');
      }
      return new Ed25519PrivateKey(der.subarray(PKCS8_PREFIX.length));
    }
    const raw = decodeKeyText(input);
    if (raw?.length === SEED_LENGTH) return new Ed25519PrivateKey(raw);
    if (raw?.length === 2 * SEED_LENGTH) {
      const key = new Ed25519PrivateKey(raw.subarray(0, SEED_LENGTH));
      if (!Buffer.from(key.publicKey.raw).equals(raw.subarray(SEED_LENGTH))) {
        throw new CryptoError('KEY_INVALID', 'The 64-byte secret key does not end with the public key of its seed: it is corrupt.');
      }
      return key;
    }
    throw new CryptoError('KEY_INVALID', 'The private key is neither a PKCS#8 PEM nor a 32-byte seed in base64, base64url or hex.');
  }

  /** The id of the public key. */
  get keyid(): string {
    return this.publicKey.keyid;
  }

  /** The 64-byte Ed25519 signature of `message`. */
  sign(message: Uint8Array, implementation: Ed25519Implementation = defaultEd25519): Uint8Array {
    if (implementation === nativeEd25519) {
      this.#native ??= nativePrivateKey(this.#seed);
      return new Uint8Array(nodeSign(null, message, this.#native));
    }
    return implementation.sign(this.#seed, message);
  }

  /** The seed, for writing the key to a file the caller protects. */
  exportSeed(): Uint8Array {
    return new Uint8Array(this.#seed);
  }

  /** The key as an unencrypted PKCS#8 PEM, for a file the caller protects (mode 0600). */
  toPem(): string {
    return toPem(Buffer.concat([PKCS8_PREFIX, this.#seed]), 'PRIVATE KEY');
  }

  /** Only the key id: a key passed to JSON.stringify or a logger never shows its seed. */
  toJSON(): { keyid: string } {
    return { keyid: this.keyid };
  }

  /** Only the key id, for `console.log` and `util.inspect`. */
  [inspect.custom](): string {
    return `Ed25519PrivateKey { keyid: '${this.keyid}' }`;
  }
}
