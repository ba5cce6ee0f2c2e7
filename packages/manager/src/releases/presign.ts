import { createHmac, timingSafeEqual } from 'node:crypto';
import { managerLimits } from '../config.js';

// Presigned download URLs, for CDN offload: `<path>?expires=<unix seconds>&sig=<hex HMAC-SHA256>`
// over "GET\n<path>\n<expires>", keyed with a secret only the manager holds. The path signed is
// the manager's canonical one (/v1/download/<artifact>/<version>/<platform>) whatever prefix the
// manager is mounted under, so a URL stays valid behind a proxy that rewrites the prefix.

export type PresignVerdict = 'valid' | 'invalid' | 'expired';

/** Signs and checks presigned download URLs. */
export class UrlSigner {
  readonly #secret: Buffer;

  constructor(secret: Uint8Array) {
    // A short key would make the MAC guessable; 32 bytes is what `drover manager init` writes.
    if (secret.length < 32) throw new RangeError('the presign secret must be at least 32 bytes');
    this.#secret = Buffer.from(secret);
  }

  #mac(path: string, expires: string): Buffer {
    return createHmac('sha256', this.#secret).update(`GET\n${path}\n${expires}`).digest();
  }

  /** `path?expires=...&sig=...`, valid for `ttlSeconds` (bounded by presignMaxTtlSeconds). */
  presign(path: string, options: { ttlSeconds?: number; now?: Date } = {}): { url: string; expiresAt: Date } {
    const ttl = Math.min(Math.max(1, Math.trunc(options.ttlSeconds ?? managerLimits.presignDefaultTtlSeconds)), managerLimits.presignMaxTtlSeconds);
    const expires = Math.floor((options.now ?? new Date()).getTime() / 1000) + ttl;
    const sig = this.#mac(path, String(expires)).toString('hex');
    return { url: `${path}?expires=${expires}&sig=${sig}`, expiresAt: new Date(expires * 1000) };
  }

  /**
   * Checks a presigned URL's `expires` and `sig`. The MAC is checked first, in constant time, so
   * `expired` is only ever said of a URL this manager signed.
   */
  verify(path: string, expires: string, sig: string, now: Date = new Date()): PresignVerdict {
    const presented = /^[0-9a-f]{64}$/.test(sig) ? Buffer.from(sig, 'hex') : Buffer.alloc(32);
    const expected = this.#mac(path, expires);
    const authentic = timingSafeEqual(presented, expected) && /^[0-9a-f]{64}$/.test(sig) && /^[0-9]{1,12}$/.test(expires);
    if (!authentic) return 'invalid';
    return Number(expires) * 1000 <= now.getTime() ? 'expired' : 'valid';
  }

  toJSON(): Record<string, never> {
    return {};
  }
}
