import { hash } from 'node:crypto';

/** SHA-256 of `data` (a string is hashed as UTF-8). */
export function sha256(data: Uint8Array | string): Uint8Array {
  // node:crypto's one-shot hash (no Hash object): records, nonces and tokens are hashed whole.
  return new Uint8Array(hash('sha256', data, 'buffer'));
}

/**
 * Lowercase hex SHA-256 of `data` (a string is hashed as UTF-8): the form of a release's
 * `file.sha256`. Stream large files through `node:crypto` instead of reading them whole.
 */
export function sha256Hex(data: Uint8Array | string): string {
  return hash('sha256', data, 'hex');
}

/** The id drover uses to name a key or a secret without revealing it: the first 16 hex of its SHA-256. */
export function shortId(data: Uint8Array | string): string {
  return sha256Hex(data).slice(0, 16);
}
