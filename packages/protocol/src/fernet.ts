// Fernet (https://github.com/fernet/spec, version 0x80), byte-for-byte compatible with Python's
// `cryptography.fernet`, so a manager can read the service tokens a CIRISManager registry stored
// and the other way round. Which key a manager uses is encryption-key.ts's rule.

import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  randomBytes,
  timingSafeEqual,
} from 'node:crypto';
import { SecretError } from './errors.js';

export const FERNET_VERSION = 0x80;
export const FERNET_KEY_BYTES = 32; // 16 signing + 16 encryption
/** How far in the future a token's timestamp may be when a ttl is checked, as Python's `_MAX_CLOCK_SKEW`. */
export const FERNET_MAX_CLOCK_SKEW_SECONDS = 60;

const BLOCK_BYTES = 16; // AES block and IV
const TIMESTAMP_BYTES = 8;
const HMAC_BYTES = 32;
const HEADER_BYTES = 1 + TIMESTAMP_BYTES + BLOCK_BYTES; // version || timestamp || iv
// PKCS7 always adds at least one byte, so the shortest ciphertext is one block.
const MIN_TOKEN_BYTES = HEADER_BYTES + BLOCK_BYTES + HMAC_BYTES;

// The symbol node:util's inspect looks up; Symbol.for keeps this module free of node:util.
const kInspect = Symbol.for('nodejs.util.inspect.custom');

const BASE64URL_PADDED = /^[A-Za-z0-9_-]*={0,2}$/;

/**
 * Decodes base64url as a canonical encoder writes it, padded (as Python emits) or unpadded.
 * Python's decoder silently drops characters outside the alphabet and text after the padding;
 * refusing those keeps "the token checked is the token stored" (spec invalid.json: "trailing
 * characters after b64 padding", "invalid characters in b64").
 */
function decodeBase64Url(text: string): Uint8Array | undefined {
  if (!BASE64URL_PADDED.test(text)) return undefined;
  const unpadded = text.replace(/=+$/, '');
  if (unpadded.length !== text.length && text.length % 4 !== 0) return undefined;
  if (unpadded.length % 4 === 1) return undefined;
  const bytes = Buffer.from(unpadded, 'base64url');
  // Re-encoding catches non-zero trailing bits, which would let two strings name one token.
  if (bytes.toString('base64url') !== unpadded) return undefined;
  return new Uint8Array(bytes);
}

/** base64url with `=` padding, the form Python's `urlsafe_b64encode` writes and its decoder requires. */
export function encodeBase64UrlPadded(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    .toString('base64')
    .replace(/\+/g, '-')
    .replace(/\//g, '_');
}

function keyInvalid(what: string): SecretError {
  return new SecretError(
    'FERNET_KEY_INVALID',
    `Failed to load the Fernet key from ${what}: it must be 32 bytes in base64url (44 characters ending in "=", ` +
      "as Python's Fernet.generate_key() prints). Generate one with Fernet.generate_key() or `openssl rand -base64 32 | tr '+/' '-_'`.",
  );
}

function tokenInvalid(why: string): SecretError {
  return new SecretError(
    'FERNET_TOKEN_INVALID',
    `Failed to decrypt a Fernet token: ${why}. Make sure it was written with this key and stored unaltered.`,
  );
}

function unixSeconds(date: Date, what: string): number {
  const ms = date.getTime();
  if (!Number.isFinite(ms)) throw new RangeError(`${what} is an invalid Date`);
  return Math.floor(ms / 1000);
}

/** Decodes and checks a Fernet key string; the raw 32 bytes, or a FERNET_KEY_INVALID error. */
export function parseFernetKey(key: string, what: string): Uint8Array {
  // typeof guard: callers in plain JS (and env lookups) can hand over undefined.
  const bytes = typeof key === 'string' ? decodeBase64Url(key) : undefined;
  if (bytes?.length !== FERNET_KEY_BYTES) throw keyInvalid(what);
  return bytes;
}

/** True when `key` is a Fernet key drover (and Python's `cryptography`) accepts. */
export function isFernetKey(key: string): boolean {
  try {
    parseFernetKey(key, 'the argument');
    return true;
  } catch {
    return false;
  }
}

/**
 * A new random Fernet key: 32 bytes, base64url with padding, the same shape as Python's
 * `Fernet.generate_key()`, so it can be pasted into a CIRISManager environment unchanged.
 *
 * @example
 * ```ts
 * const key = generateFernetKey() // "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4="
 * ```
 */
export function generateFernetKey(): string {
  return encodeBase64UrlPadded(randomBytes(FERNET_KEY_BYTES));
}

export interface FernetEncryptOptions {
  /** The token's timestamp; defaults to the current time. */
  now?: Date;
  /** 16 bytes; defaults to fresh random bytes. Only tests should set it: a reused IV leaks plaintext. */
  iv?: Uint8Array;
}

export interface FernetDecryptOptions {
  /** Refuse tokens older than this many seconds (FERNET_TOKEN_EXPIRED), as Python's `ttl`. */
  ttlSeconds?: number;
  /** The time to check the ttl against; defaults to the current time. */
  now?: Date;
}

/**
 * Encrypts and authenticates small secrets at rest (service tokens), interoperable with Python's
 * `cryptography.fernet.Fernet`.
 *
 * The key lives in private fields and the instance prints as `Fernet {}`: JSON.stringify,
 * console.log and pino never see it.
 *
 * @example
 * ```ts
 * const fernet = new Fernet(resolveEncryptionKey(process.env).key)
 * const stored = fernet.encrypt(serviceToken)
 * const serviceTokenAgain = fernet.decryptText(stored)
 * ```
 */
export class Fernet {
  readonly #signingKey: Buffer;
  readonly #encryptionKey: Buffer;

  constructor(key: string) {
    const bytes = parseFernetKey(key, 'the given key');
    this.#signingKey = Buffer.from(bytes.subarray(0, 16));
    this.#encryptionKey = Buffer.from(bytes.subarray(16));
  }

  /** Encrypts bytes, or a string as UTF-8, into a padded base64url token. */
  encrypt(plaintext: Uint8Array | string, options: FernetEncryptOptions = {}): string {
    const timestamp = unixSeconds(options.now ?? new Date(), 'options.now');
    if (timestamp < 0) throw new RangeError('options.now is before 1970: a Fernet timestamp is unsigned');
    const iv = options.iv ?? randomBytes(BLOCK_BYTES);
    if (iv.length !== BLOCK_BYTES) throw new RangeError(`options.iv must be ${BLOCK_BYTES} bytes`);

    const header = Buffer.alloc(HEADER_BYTES);
    header[0] = FERNET_VERSION;
    header.writeBigUInt64BE(BigInt(timestamp), 1);
    header.set(iv, 1 + TIMESTAMP_BYTES);

    // createCipheriv pads with PKCS7 by default, as the spec requires.
    const cipher = createCipheriv('aes-128-cbc', this.#encryptionKey, iv);
    const data = typeof plaintext === 'string' ? Buffer.from(plaintext, 'utf8') : plaintext;
    const signed = Buffer.concat([header, cipher.update(data), cipher.final()]);
    const mac = createHmac('sha256', this.#signingKey).update(signed).digest();
    return encodeBase64UrlPadded(Buffer.concat([signed, mac]));
  }

  /**
   * Verifies and decrypts a token. Throws SecretError FERNET_TOKEN_INVALID for anything not
   * written with this key (or altered since), FERNET_TOKEN_EXPIRED when `ttlSeconds` is given
   * and the token is older than that.
   */
  decrypt(token: string, options: FernetDecryptOptions = {}): Uint8Array {
    const bytes = typeof token === 'string' ? decodeBase64Url(token) : undefined;
    if (bytes === undefined) throw tokenInvalid('it is not base64url');
    if (bytes[0] !== FERNET_VERSION) throw tokenInvalid('its version byte is not 0x80');
    if (bytes.length < MIN_TOKEN_BYTES || (bytes.length - HEADER_BYTES - HMAC_BYTES) % BLOCK_BYTES !== 0) {
      throw tokenInvalid('it has the wrong length');
    }

    const body = bytes.subarray(0, bytes.length - HMAC_BYTES);
    const mac = bytes.subarray(bytes.length - HMAC_BYTES);
    // Forgery and padding oracles: authenticate before anything reads the ciphertext, and compare
    // in constant time so the mismatch position is not observable.
    const expected = createHmac('sha256', this.#signingKey).update(body).digest();
    if (!timingSafeEqual(expected, mac)) throw tokenInvalid('its HMAC does not match this key');

    // The time checks run after the HMAC (the spec checks ttl first) so that EXPIRED is only ever
    // reported for an authentic token; either order refuses the same tokens.
    if (options.ttlSeconds !== undefined) this.#checkAge(body, options.ttlSeconds, options.now);

    const iv = body.subarray(1 + TIMESTAMP_BYTES, HEADER_BYTES);
    const decipher = createDecipheriv('aes-128-cbc', this.#encryptionKey, iv);
    try {
      return new Uint8Array(Buffer.concat([decipher.update(body.subarray(HEADER_BYTES)), decipher.final()]));
    } catch (cause) {
      // Only reachable with an authentic token whose content was not PKCS7 padded: no oracle.
      throw new SecretError('FERNET_TOKEN_INVALID', 'Failed to decrypt a Fernet token: its padding is invalid. ' +
        'Make sure it was written with this whole key (both halves) by a Fernet implementation.', { cause });
    }
  }

  /** {@link Fernet.decrypt}, then UTF-8 decoding; a token whose content is not UTF-8 is FERNET_TOKEN_INVALID. */
  decryptText(token: string, options: FernetDecryptOptions = {}): string {
    const bytes = this.decrypt(token, options);
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch (cause) {
      throw new SecretError('FERNET_TOKEN_INVALID', 'Failed to decode a Fernet token as text: its content is not ' +
        'UTF-8. Use decrypt() for binary content.', { cause });
    }
  }

  // Python's rule exactly (cryptography `_decrypt_data`): with a ttl, `timestamp + ttl < now` is
  // expired and `now + 60 < timestamp` is refused as clock skew; without a ttl neither applies.
  #checkAge(body: Uint8Array, ttlSeconds: number, now: Date | undefined): void {
    if (!Number.isSafeInteger(ttlSeconds) || ttlSeconds < 0) {
      throw new RangeError('ttlSeconds must be a non-negative integer');
    }
    const current = BigInt(unixSeconds(now ?? new Date(), 'options.now'));
    // BigInt: the field is 64-bit unsigned and a forged-but-authentic far-future value must not round.
    const timestamp = Buffer.from(body.buffer, body.byteOffset, body.byteLength).readBigUInt64BE(1);
    if (timestamp + BigInt(ttlSeconds) < current) {
      throw new SecretError(
        'FERNET_TOKEN_EXPIRED',
        `Failed to accept a Fernet token: it is older than its ${ttlSeconds} s time-to-live. Issue a new one.`,
      );
    }
    if (current + BigInt(FERNET_MAX_CLOCK_SKEW_SECONDS) < timestamp) {
      throw tokenInvalid(
        `its timestamp is more than ${FERNET_MAX_CLOCK_SKEW_SECONDS} s in the future; check the clocks of the writer and this host`,
      );
    }
  }

  // Redaction: nothing about the key is printable, not even its length.
  toJSON(): Record<string, never> {
    return {};
  }

  toString(): string {
    return 'Fernet {}';
  }

  [kInspect](): string {
    return 'Fernet {}';
  }
}
