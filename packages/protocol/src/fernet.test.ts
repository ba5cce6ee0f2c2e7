import { createHmac } from 'node:crypto';
import { inspect } from 'node:util';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SecretError } from './errors.js';
import { Fernet, generateFernetKey, isFernetKey } from './fernet.js';
import type { SecretErrorCode } from './errors.js';

// Acceptance vectors from github.com/fernet/spec: generate.json and verify.json (the version 0x80
// entry), invalid.json as of commit 8a219208ed1884505ff1f638028fd6fcc51aeb5a, copied verbatim.
const SECRET = 'cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=';

const generateVectors = [
  {
    token: 'gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==',
    now: '1985-10-26T01:20:00-07:00',
    iv: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
    src: 'hello',
    secret: SECRET,
  },
];

const verifyVectors = [
  {
    token: 'gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==',
    now: '1985-10-26T01:20:01-07:00',
    ttl_sec: 60,
    src: 'hello',
    secret: SECRET,
  },
];

const invalidVectors = [
  {
    desc: 'incorrect mac',
    token: 'gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPAl1-szkFVzXTuGb4hR8AKtwcaX1YdykQUFBQUFBQUFBQQ==',
    now: '1985-10-26T01:20:01-07:00',
    ttl_sec: 60,
    secret: SECRET,
  },
  {
    desc: 'too short',
    token: 'gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPA==',
    now: '1985-10-26T01:20:01-07:00',
    ttl_sec: 60,
    secret: SECRET,
  },
  {
    desc: 'invalid base64',
    token: '%%%%%%%%%%%%%AECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPAl1-szkFVzXTuGb4hR8AKtwcaX1YdykRtfsH-p1YsUD2Q==',
    now: '1985-10-26T01:20:01-07:00',
    ttl_sec: 60,
    secret: SECRET,
  },
  {
    desc: 'payload size not multiple of block size',
    token: 'gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPOm73QeoCk9uGib28Xe5vz6oxq5nmxbx_v7mrfyudzUm',
    now: '1985-10-26T01:20:01-07:00',
    ttl_sec: 60,
    secret: SECRET,
  },
  {
    desc: 'payload padding error',
    token: 'gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0ODz4LEpdELGQAad7aNEHbf-JkLPIpuiYRLQ3RtXatOYREu2FWke6CnJNYIbkuKNqOhw==',
    now: '1985-10-26T01:20:01-07:00',
    ttl_sec: 60,
    secret: SECRET,
  },
  {
    desc: 'far-future TS (unacceptable clock skew)',
    token: 'gAAAAAAdwStRAAECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPAnja1xKYyhd-Y6mSkTOyTGJmw2Xc2a6kBd-iX9b_qXQcw==',
    now: '1985-10-26T01:20:01-07:00',
    ttl_sec: 60,
    secret: SECRET,
  },
  {
    desc: 'expired TTL',
    token: 'gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPAl1-szkFVzXTuGb4hR8AKtwcaX1YdykRtfsH-p1YsUD2Q==',
    now: '1985-10-26T01:21:31-07:00',
    ttl_sec: 60,
    secret: SECRET,
  },
  {
    desc: 'incorrect IV (causes padding error)',
    token: 'gAAAAAAdwJ6xBQECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPAkLhFLHpGtDBRLRTZeUfWgHSv49TF2AUEZ1TIvcZjK1zQ==',
    now: '1985-10-26T01:20:01-07:00',
    ttl_sec: 60,
    secret: SECRET,
  },
  {
    desc: 'trailing characters after b64 padding',
    token: 'gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==trailingdata',
    now: '1985-10-26T01:20:01-07:00',
    ttl_sec: 60,
    secret: SECRET,
  },
  {
    desc: 'invalid characters in b64',
    token: '*gAAAAAAdwJ6wAAECAwQFBgcI!CQoLDA0ODy021?cpGVWKZ_eEwC@GM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==',
    now: '1985-10-26T01:20:01-07:00',
    ttl_sec: 60,
    secret: SECRET,
  },
  {
    desc: 'invalid non-urlsafe characters in b64',
    token: 'gAAAAAAdwJ6wAAEC/AwQFBgcICQoLDA0ODy+021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==',
    now: '1985-10-26T01:20:01-07:00',
    ttl_sec: 60,
    secret: SECRET,
  },
];

// The one authentic-but-stale vector is EXPIRED; everything else is forged, garbled or skewed.
const expectedInvalidCode: Record<string, SecretErrorCode> = { 'expired TTL': 'FERNET_TOKEN_EXPIRED' };

function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected the call to throw');
}

function expectSecretError(fn: () => unknown, code: SecretErrorCode): SecretError {
  const error = caught(fn);
  expect(error).toBeInstanceOf(SecretError);
  expect((error as SecretError).code).toBe(code);
  return error as SecretError;
}

function decode(token: string): Buffer {
  return Buffer.from(token, 'base64url');
}

function encodePadded(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64').replace(/\+/g, '-').replace(/\//g, '_');
}

// Re-signs a modified token body, to build tokens that pass the HMAC but break another rule.
function resign(key: string, body: Uint8Array): string {
  const signingKey = decode(key).subarray(0, 16);
  const mac = createHmac('sha256', signingKey).update(body).digest();
  return encodePadded(Buffer.concat([body, mac]));
}

const at = (iso: string): Date => new Date(iso);
const T0 = at('2024-01-01T00:00:00Z');
const plusSeconds = (date: Date, seconds: number): Date => new Date(date.getTime() + seconds * 1000);

describe('Fernet spec vectors', () => {
  it.each(generateVectors)('generates $token', (vector) => {
    const token = new Fernet(vector.secret).encrypt(vector.src, { now: at(vector.now), iv: Uint8Array.from(vector.iv) });
    expect(token).toBe(vector.token);
  });

  it.each(verifyVectors)('verifies $token', (vector) => {
    const text = new Fernet(vector.secret).decryptText(vector.token, { ttlSeconds: vector.ttl_sec, now: at(vector.now) });
    expect(text).toBe(vector.src);
  });

  it.each(invalidVectors)('refuses: $desc', (vector) => {
    const fernet = new Fernet(vector.secret);
    const code = expectedInvalidCode[vector.desc] ?? 'FERNET_TOKEN_INVALID';
    expectSecretError(() => fernet.decrypt(vector.token, { ttlSeconds: vector.ttl_sec, now: at(vector.now) }), code);
  });
});

describe('Fernet round trip', () => {
  it('round-trips arbitrary bytes, including empty and multi-block', () => {
    const fernet = new Fernet(generateFernetKey());
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        expect(fernet.decrypt(fernet.encrypt(bytes))).toEqual(bytes);
      }),
    );
  });

  it('round-trips text as UTF-8', () => {
    const fernet = new Fernet(generateFernetKey());
    const text = 'service token: ünïcødé 🔑';
    const token = fernet.encrypt(text);
    expect(fernet.decryptText(token)).toBe(text);
    expect(Buffer.from(fernet.decrypt(token)).toString('utf8')).toBe(text);
  });

  it('emits the shape Python emits: version 0x80, the timestamp, padded base64url', () => {
    const fernet = new Fernet(generateFernetKey());
    const token = fernet.encrypt('x', { now: T0 });
    expect(token).toMatch(/^gAAAAA[A-Za-z0-9_-]*={0,2}$/);
    expect(token.length % 4).toBe(0);
    const bytes = decode(token);
    expect(bytes[0]).toBe(0x80);
    expect(bytes.readBigUInt64BE(1)).toBe(BigInt(T0.getTime() / 1000));
    expect(bytes.length).toBe(1 + 8 + 16 + 16 + 32);
  });

  it('uses a fresh IV each time', () => {
    const fernet = new Fernet(generateFernetKey());
    const a = decode(fernet.encrypt('same', { now: T0 }));
    const b = decode(fernet.encrypt('same', { now: T0 }));
    expect(a.subarray(9, 25).equals(b.subarray(9, 25))).toBe(false);
  });

  it('accepts the token unpadded, as it is the same bytes', () => {
    const fernet = new Fernet(generateFernetKey());
    const token = fernet.encrypt('hello');
    expect(token.endsWith('=')).toBe(true);
    expect(fernet.decryptText(token.replace(/=+$/, ''))).toBe('hello');
  });
});

describe('Fernet refuses altered and foreign tokens', () => {
  it('refuses every single flipped bit, as FERNET_TOKEN_INVALID', () => {
    const key = generateFernetKey();
    const fernet = new Fernet(key);
    const bytes = decode(fernet.encrypt('a secret worth tampering with', { now: T0 }));
    for (let index = 0; index < bytes.length; index += 1) {
      for (const bit of [0x01, 0x80]) {
        const tampered = Buffer.from(bytes);
        tampered[index] = (tampered[index] ?? 0) ^ bit;
        expectSecretError(() => fernet.decrypt(encodePadded(tampered)), 'FERNET_TOKEN_INVALID');
      }
    }
  });

  it('refuses a token written under another key', () => {
    const token = new Fernet(generateFernetKey()).encrypt('hello');
    expectSecretError(() => new Fernet(generateFernetKey()).decrypt(token), 'FERNET_TOKEN_INVALID');
  });

  it('refuses a key whose signing half matches but whose encryption half differs', () => {
    const key = decode(generateFernetKey());
    const other = Buffer.from(key);
    other[31] = (other[31] ?? 0) ^ 1;
    const token = new Fernet(encodePadded(key)).encrypt('hello');
    // The HMAC passes; AES under the wrong key almost always leaves invalid PKCS7 padding, and when
    // it does not, the plaintext is still not "hello".
    const error = caught(() => new Fernet(encodePadded(other)).decryptText(token));
    if (error instanceof SecretError) expect(error.code).toBe('FERNET_TOKEN_INVALID');
    else expect(error).toBeInstanceOf(Error);
  });

  it.each([
    ['empty', ''],
    ['not base64', 'not a token!'],
    ['standard base64 alphabet', 'gAAAAA+/'],
    ['too much padding', 'gAAAAAAdwJ6w==='],
    ['padding in the middle', 'gAAA=AAAdwJ6w'],
    ['a single base64 character', 'g'],
    ['non-canonical trailing bits', 'gB'],
  ])('refuses a malformed token (%s)', (_name, token) => {
    expectSecretError(() => new Fernet(SECRET).decrypt(token), 'FERNET_TOKEN_INVALID');
  });

  it('refuses a non-string token', () => {
    expectSecretError(() => new Fernet(SECRET).decrypt(undefined as unknown as string), 'FERNET_TOKEN_INVALID');
  });

  it('refuses an authentic token with another version byte', () => {
    const bytes = decode(generateVectors[0]?.token ?? '');
    const body = Buffer.from(bytes.subarray(0, bytes.length - 32));
    body[0] = 0x81;
    expectSecretError(() => new Fernet(SECRET).decrypt(resign(SECRET, body)), 'FERNET_TOKEN_INVALID');
  });

  it('refuses an authentic token with a truncated ciphertext or none', () => {
    const bytes = decode(generateVectors[0]?.token ?? '');
    for (const length of [25, 25 + 15, 25 + 17]) {
      expectSecretError(() => new Fernet(SECRET).decrypt(resign(SECRET, bytes.subarray(0, length))), 'FERNET_TOKEN_INVALID');
    }
  });

  it('refuses text that is not UTF-8 in decryptText, but returns it from decrypt', () => {
    const fernet = new Fernet(generateFernetKey());
    const token = fernet.encrypt(Uint8Array.from([0xff, 0xfe]));
    expect(fernet.decrypt(token)).toEqual(Uint8Array.from([0xff, 0xfe]));
    expectSecretError(() => fernet.decryptText(token), 'FERNET_TOKEN_INVALID');
  });
});

describe('Fernet time-to-live and clock skew (Python rules)', () => {
  const fernet = new Fernet(generateFernetKey());
  const token = fernet.encrypt('hello', { now: T0 });

  it('accepts a token exactly ttl seconds old and refuses one a second older', () => {
    expect(fernet.decryptText(token, { ttlSeconds: 60, now: plusSeconds(T0, 60) })).toBe('hello');
    expectSecretError(() => fernet.decrypt(token, { ttlSeconds: 60, now: plusSeconds(T0, 61) }), 'FERNET_TOKEN_EXPIRED');
  });

  it('ignores age without a ttl', () => {
    expect(fernet.decryptText(token, { now: plusSeconds(T0, 10 * 365 * 86400) })).toBe('hello');
  });

  it('refuses a token more than 60 s in the future when a ttl is given', () => {
    expect(fernet.decryptText(token, { ttlSeconds: 3600, now: plusSeconds(T0, -60) })).toBe('hello');
    expectSecretError(() => fernet.decrypt(token, { ttlSeconds: 3600, now: plusSeconds(T0, -61) }), 'FERNET_TOKEN_INVALID');
  });

  it('accepts a future token without a ttl, as Python does', () => {
    expect(fernet.decryptText(token, { now: plusSeconds(T0, -86400) })).toBe('hello');
  });

  it('reports a forged token as INVALID even when it would also be expired', () => {
    const forged = decode(token);
    forged[forged.length - 1] = (forged[forged.length - 1] ?? 0) ^ 1;
    expectSecretError(
      () => fernet.decrypt(encodePadded(forged), { ttlSeconds: 1, now: plusSeconds(T0, 1000) }),
      'FERNET_TOKEN_INVALID',
    );
  });

  it('compares a 64-bit timestamp exactly', () => {
    const body = Buffer.from(decode(token).subarray(0, decode(token).length - 32));
    body.writeBigUInt64BE(0xffff_ffff_ffff_ffffn, 1);
    const key = generateFernetKey();
    expectSecretError(() => new Fernet(key).decrypt(resign(key, body), { ttlSeconds: 60, now: T0 }), 'FERNET_TOKEN_INVALID');
  });

  it.each([-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY])('rejects ttlSeconds %s as a programming error', (ttl) => {
    expect(() => fernet.decrypt(token, { ttlSeconds: ttl, now: T0 })).toThrow(RangeError);
  });

  it('rejects a bad IV length or a pre-1970 time when encrypting', () => {
    expect(() => fernet.encrypt('x', { iv: new Uint8Array(15) })).toThrow(RangeError);
    expect(() => fernet.encrypt('x', { now: new Date(-1000) })).toThrow(RangeError);
    expect(() => fernet.encrypt('x', { now: new Date(Number.NaN) })).toThrow(RangeError);
  });
});

describe('Fernet keys', () => {
  it('generates 32 random bytes as 44 padded base64url characters, like Fernet.generate_key()', () => {
    const key = generateFernetKey();
    expect(key).toMatch(/^[A-Za-z0-9_-]{43}=$/);
    expect(decode(key).length).toBe(32);
    expect(generateFernetKey()).not.toBe(key);
    expect(isFernetKey(key)).toBe(true);
  });

  it('accepts a key without its padding', () => {
    const key = generateFernetKey();
    const token = new Fernet(key).encrypt('hello');
    expect(new Fernet(key.slice(0, -1)).decryptText(token)).toBe('hello');
  });

  it.each([
    ['empty', ''],
    ['31 bytes', encodePadded(new Uint8Array(31))],
    ['33 bytes', encodePadded(new Uint8Array(33))],
    ['standard base64 alphabet', 'cw/0x689RpI+jtRR7oE8h/eQsKImvJapLeSbXpwF4e4='],
    ['trailing newline', `${SECRET}\n`],
    ['hex', 'a'.repeat(64)],
  ])('refuses a malformed key (%s) without echoing it', (_name, key) => {
    const error = expectSecretError(() => new Fernet(key), 'FERNET_KEY_INVALID');
    if (key !== '') expect(error.message).not.toContain(key.trim());
    expect(isFernetKey(key)).toBe(false);
  });

  it('never prints the key', () => {
    const key = generateFernetKey();
    const raw = decode(key);
    const fernet = new Fernet(key);
    const shown = [
      JSON.stringify(fernet),
      JSON.stringify({ fernet }),
      inspect(fernet, { showHidden: true, depth: 10 }),
      String(fernet),
      Object.keys(fernet).join(','),
    ].join('\n');
    for (const secret of [key, key.slice(0, 20), raw.subarray(0, 16).toString('hex'), raw.subarray(16).toString('hex'),
      raw.subarray(0, 16).toString('base64'), raw.subarray(16).toString('base64')]) {
      expect(shown).not.toContain(secret);
    }
    expect(JSON.stringify(fernet)).toBe('{}');
    expect(inspect(fernet)).toBe('Fernet {}');
    expect(String(fernet)).toBe('Fernet {}');
  });

  it('never puts the key or plaintext in a decryption error', () => {
    const key = generateFernetKey();
    const plaintext = 'the-plaintext-service-token';
    const token = new Fernet(key).encrypt(plaintext, { now: T0 });
    const errors = [
      caught(() => new Fernet(generateFernetKey()).decrypt(token)),
      caught(() => new Fernet(key).decrypt(token, { ttlSeconds: 1, now: plusSeconds(T0, 5) })),
    ];
    for (const error of errors) {
      expect(error).toBeInstanceOf(SecretError);
      const text = `${(error as Error).message} ${JSON.stringify(error)} ${inspect(error)}`;
      expect(text).not.toContain(key);
      expect(text).not.toContain(plaintext);
    }
  });
});
