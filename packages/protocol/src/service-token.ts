import { hash, randomBytes, timingSafeEqual } from 'node:crypto';
import { shortId } from './hash.js';

/** Random bytes in a service token (256 bits). */
export const SERVICE_TOKEN_BYTES = 32;

/** A new service token: 256 random bits, base64url. */
export function generateServiceToken(): string {
  return randomBytes(SERVICE_TOKEN_BYTES).toString('base64url');
}

/**
 * Compares a presented secret with the expected one in constant time.
 *
 * timing: both sides are hashed to 32 bytes first, so the comparison never exits early on a
 * length or a shared prefix; every input, of any length, takes the same path.
 *
 * @example
 * ```ts
 * if (!verifyServiceToken(presented, process.env.DROVER_SERVICE_TOKEN)) return reply(401)
 * ```
 */
export function verifyServiceToken(presented: string | undefined, expected: string): boolean {
  const a = hash('sha256', presented ?? '', 'buffer');
  const b = hash('sha256', expected, 'buffer');
  // A missing token still pays for a full comparison; `&&` after it keeps the time the same.
  const equal = timingSafeEqual(a, b);
  return equal && presented !== undefined;
}

/** Names a token in logs and errors without revealing it: the first 16 hex of its SHA-256. */
export function tokenId(token: string): string {
  return shortId(token);
}

/**
 * Reads `Bearer service:<token>` (or, with `prefix: ''`, `Bearer <token>`) from an Authorization
 * header value.
 *
 * @param header - the Authorization header's value, if any
 * @param prefix - what the credential starts with (default `service:`, the manager-to-agent form)
 * @returns the token, or undefined when the header has another shape
 */
export function parseBearer(header: string | undefined, prefix = 'service:'): string | undefined {
  if (header === undefined) return undefined;
  const match = /^Bearer +(\S+)\s*$/i.exec(header);
  const value = match?.[1];
  if (value === undefined || !value.startsWith(prefix)) return undefined;
  return value.slice(prefix.length);
}
