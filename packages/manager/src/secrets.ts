import { hash, randomBytes, timingSafeEqual } from 'node:crypto';
import { generateServiceToken, tokenId } from '@drover/protocol';

// Agent credentials and enrollment tokens: 256 random bits, base64url, handed out once and stored
// only as a hash.
//
// Why SHA-256 and not bcrypt/scrypt/Argon2: a slow, salted KDF exists to make guessing a
// low-entropy human password expensive. These secrets are 256 bits from the CSPRNG, so there is
// nothing to guess: a stolen hash table still leaves 2^256 candidates per entry, and SHA-256's
// preimage resistance is the whole defence, as it is for the tokens themselves. A fast hash also
// keeps the check-in path (thousands a second) cheap and lets the store index credentials by hash.

/** A new 256-bit secret (credential, enrollment token), base64url. */
export function newSecret(): string {
  return generateServiceToken();
}

/** The stored form of a secret: lowercase hex SHA-256 of its UTF-8 text. */
export function hashSecret(secret: string): string {
  // node:crypto's one-shot hash with its own hex: once per check-in, no Hash object, no copies.
  return hash('sha256', secret, 'hex');
}

/** Compares two hex hashes in constant time (both are 64 hex characters when well-formed). */
export function hashesEqual(a: string, b: string): boolean {
  const left = Buffer.from(a, 'utf8');
  const right = Buffer.from(b, 'utf8');
  // Length is public (always 64 for our hashes); a mismatch still costs one comparison.
  if (left.length !== right.length) return timingSafeEqual(left, left) && false;
  return timingSafeEqual(left, right);
}

/** Names a secret in logs and audit records: the first 16 hex of its SHA-256. */
export function secretId(secret: string): string {
  return tokenId(secret);
}

/** The id of a secret from its stored hash (the same 16 hex as {@link secretId}). */
export function idOfHash(hash: string): string {
  return hash.slice(0, 16);
}

/** A new random identifier with a readable prefix, e.g. `agent-3f9c0d1e2a4b5c6d`. */
export function newId(prefix: string): string {
  return `${prefix}-${randomBytes(8).toString('hex')}`;
}
