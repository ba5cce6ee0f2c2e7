import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { UrlSigner } from './presign.js';

const signer = new UrlSigner(randomBytes(32));
const path = '/v1/download/agent/1.2.3/linux-x64';
const now = new Date('2026-03-01T00:00:00Z');

function parts(url: string): { path: string; expires: string; sig: string } {
  const parsed = new URL(url, 'http://manager');
  return { path: parsed.pathname, expires: parsed.searchParams.get('expires') ?? '', sig: parsed.searchParams.get('sig') ?? '' };
}

describe('UrlSigner', () => {
  it('accepts its own URL until it expires', () => {
    const { url, expiresAt } = signer.presign(path, { ttlSeconds: 60, now });
    const p = parts(url);
    expect(p.path).toBe(path);
    expect(signer.verify(p.path, p.expires, p.sig, now)).toBe('valid');
    expect(signer.verify(p.path, p.expires, p.sig, expiresAt)).toBe('expired');
  });

  it('refuses another path, a moved expiry, another key and garbage', () => {
    const p = parts(signer.presign(path, { ttlSeconds: 60, now }).url);
    expect(signer.verify('/v1/download/agent/1.2.4/linux-x64', p.expires, p.sig, now)).toBe('invalid');
    expect(signer.verify(path, String(Number(p.expires) + 3600), p.sig, now)).toBe('invalid');
    expect(new UrlSigner(randomBytes(32)).verify(path, p.expires, p.sig, now)).toBe('invalid');
    expect(signer.verify(path, p.expires, 'zz', now)).toBe('invalid');
    expect(signer.verify(path, 'soon', p.sig, now)).toBe('invalid');
  });

  it('never reports an unauthentic URL as merely expired', () => {
    const p = parts(signer.presign(path, { ttlSeconds: 1, now }).url);
    expect(signer.verify(path, '1', p.sig, now)).toBe('invalid');
  });

  it('bounds the lifetime and refuses short keys', () => {
    const { expiresAt } = signer.presign(path, { ttlSeconds: 10 ** 9, now });
    expect(expiresAt.getTime() - now.getTime()).toBe(24 * 3600 * 1000);
    expect(() => new UrlSigner(randomBytes(16))).toThrow(RangeError);
    expect(JSON.stringify(signer)).toBe('{}');
  });
});
