import { createHash } from 'node:crypto';
import { toHex } from './bytes.js';

export function sha256(data: Uint8Array | string): Uint8Array {
  return new Uint8Array(createHash('sha256').update(data).digest());
}

export function sha256Hex(data: Uint8Array | string): string {
  return toHex(sha256(data));
}

/** The id drover uses to name a key or a secret without revealing it: the first 16 hex of its SHA-256. */
export function shortId(data: Uint8Array | string): string {
  return sha256Hex(data).slice(0, 16);
}
