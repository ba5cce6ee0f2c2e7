import { describe, expect, it, vi } from 'vitest';
import { generateServiceToken, parseBearer, tokenId, verifyServiceToken } from './service-token.js';
import * as nodeCrypto from 'node:crypto';

vi.mock('node:crypto', async (importOriginal) => {
  const actual = await importOriginal<typeof nodeCrypto>();
  return { ...actual, timingSafeEqual: vi.fn(actual.timingSafeEqual) };
});

describe('service tokens', () => {
  it('generates 256-bit base64url tokens', () => {
    const token = generateServiceToken();
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(token, 'base64url')).toHaveLength(32);
    expect(generateServiceToken()).not.toBe(token);
  });

  it('accepts the right token and refuses others', () => {
    const token = generateServiceToken();
    expect(verifyServiceToken(token, token)).toBe(true);
    expect(verifyServiceToken(`${token}x`, token)).toBe(false);
    expect(verifyServiceToken(undefined, token)).toBe(false);
    expect(verifyServiceToken('', token)).toBe(false);
  });

  it('takes the same path for a wrong token of equal length, another length and none: one 32-byte timingSafeEqual', () => {
    const token = generateServiceToken();
    const equalLength = token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A');
    const compare = vi.mocked(nodeCrypto.timingSafeEqual);
    for (const presented of [equalLength, 'short', `${token}${token}`, undefined]) {
      compare.mockClear();
      expect(verifyServiceToken(presented, token)).toBe(false);
      // No early exit on length or prefix: exactly one comparison of two 32-byte digests.
      expect(compare).toHaveBeenCalledTimes(1);
      const [a, b] = compare.mock.calls[0] ?? [];
      expect((a as Buffer).length).toBe(32);
      expect((b as Buffer).length).toBe(32);
    }
  });

  it('names a token by an id that does not reveal it', () => {
    const token = generateServiceToken();
    const id = tokenId(token);
    expect(id).toMatch(/^[0-9a-f]{16}$/);
    expect(token).not.toContain(id);
  });

  it('parses Bearer service:<token>', () => {
    expect(parseBearer('Bearer service:abc')).toBe('abc');
    expect(parseBearer('bearer service:abc ')).toBe('abc');
    expect(parseBearer('Bearer abc')).toBeUndefined();
    expect(parseBearer('Bearer abc', '')).toBe('abc');
    expect(parseBearer('Basic service:abc')).toBeUndefined();
    expect(parseBearer(undefined)).toBeUndefined();
  });
});
