import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fromHex, toHex } from './bytes.js';
import { Ed25519PrivateKey, Ed25519PublicKey, keyIdOf, nativeEd25519, tweetnaclEd25519 } from './ed25519.js';
import { CryptoError } from './errors.js';
import { sha256Hex } from './hash.js';
import { expectError } from '../../../test/helpers/expect-error.js';

const hex = (text: string): Uint8Array => fromHex(text) ?? new Uint8Array();
const implementations = [nativeEd25519, tweetnaclEd25519];

// RFC 8032 section 7.1, tests 1-3.
const rfc8032 = [
  {
    seed: '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60',
    publicKey: 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
    message: '',
    signature: 'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
  },
  {
    seed: '4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb',
    publicKey: '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c',
    message: '72',
    signature: '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00',
  },
  {
    seed: 'c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7',
    publicKey: 'fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025',
    message: 'af82',
    signature: '6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a',
  },
];

describe.each(implementations)('Ed25519 with $name', (impl) => {
  it.each(rfc8032)('passes RFC 8032 vector for public key $publicKey', (vector) => {
    expect(toHex(impl.publicKeyFromSeed(hex(vector.seed)))).toBe(vector.publicKey);
    expect(toHex(impl.sign(hex(vector.seed), hex(vector.message)))).toBe(vector.signature);
    expect(impl.verify(hex(vector.publicKey), hex(vector.message), hex(vector.signature))).toBe(true);
    const flipped = hex(vector.signature);
    flipped[0] = (flipped[0] ?? 0) ^ 1;
    expect(impl.verify(hex(vector.publicKey), hex(vector.message), flipped)).toBe(false);
  });

  it('returns false, never throws, for signatures of the wrong length', () => {
    const key = Ed25519PrivateKey.generate();
    expect(impl.verify(key.publicKey.raw, new Uint8Array([1]), new Uint8Array(63))).toBe(false);
    expect(impl.verify(key.publicKey.raw, new Uint8Array([1]), new Uint8Array(65))).toBe(false);
  });
});

describe('the two implementations agree', () => {
  it('node:crypto signatures verify with tweetnacl and the reverse', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ maxLength: 512 }), (seed, message) => {
        expect(toHex(nativeEd25519.publicKeyFromSeed(seed))).toBe(toHex(tweetnaclEd25519.publicKeyFromSeed(seed)));
        const publicKey = nativeEd25519.publicKeyFromSeed(seed);
        const nativeSig = nativeEd25519.sign(seed, message);
        const naclSig = tweetnaclEd25519.sign(seed, message);
        // Ed25519 is deterministic: both must produce the same bytes, and each verifies the other's.
        expect(toHex(nativeSig)).toBe(toHex(naclSig));
        expect(tweetnaclEd25519.verify(publicKey, message, nativeSig)).toBe(true);
        expect(nativeEd25519.verify(publicKey, message, naclSig)).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it('a flipped bit anywhere in message or signature is refused by both', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ minLength: 1, maxLength: 256 }), fc.nat(), fc.boolean(), (seed, message, position, inSignature) => {
        const publicKey = nativeEd25519.publicKeyFromSeed(seed);
        const signature = nativeEd25519.sign(seed, message);
        const target = inSignature ? signature : message;
        const index = position % target.length;
        target[index] = (target[index] ?? 0) ^ (1 << position % 8);
        expect(nativeEd25519.verify(publicKey, message, signature)).toBe(false);
        expect(tweetnaclEd25519.verify(publicKey, message, signature)).toBe(false);
      }),
      { numRuns: 200 },
    );
  });
});

// Ed25519's group order; a signature's S (its second 32 bytes, little-endian) must be below it.
const GROUP_ORDER = (1n << 252n) + 27742317777372353535851937790883648493n;

describe('malleability', () => {
  // RFC 8032 5.1.7 requires 0 <= S < L. node:crypto (OpenSSL) enforces it; tweetnacl does not, so
  // without a check there the fallback accepted a second, different signature for every message.
  it('both implementations refuse a signature whose S was replaced by S + L', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ maxLength: 64 }), (seed, message) => {
        const publicKey = nativeEd25519.publicKeyFromSeed(seed);
        const signature = nativeEd25519.sign(seed, message);
        const s = BigInt(`0x${toHex(signature.slice(32).reverse())}`) + GROUP_ORDER;
        fc.pre(s < 1n << 256n);
        const malleated = new Uint8Array(signature);
        malleated.set(hex(s.toString(16).padStart(64, '0')).reverse(), 32);
        for (const impl of implementations) {
          expect(impl.verify(publicKey, message, signature), impl.name).toBe(true);
          expect(impl.verify(publicKey, message, malleated), impl.name).toBe(false);
          expect(new Ed25519PublicKey(publicKey).verify(message, malleated, impl), impl.name).toBe(false);
        }
      }),
      { numRuns: 100 },
    );
  });
});

describe('keys', () => {
  it('round-trips PEM, base64, base64url and hex encodings', () => {
    const key = Ed25519PrivateKey.generate();
    const seed = key.exportSeed();
    for (const form of [key.toPem(), Buffer.from(seed).toString('base64'), Buffer.from(seed).toString('base64url'), toHex(seed), seed]) {
      expect(Ed25519PrivateKey.from(form).keyid).toBe(key.keyid);
    }
    const secret64 = Buffer.concat([seed, key.publicKey.raw]).toString('base64');
    expect(Ed25519PrivateKey.from(secret64).keyid).toBe(key.keyid);
    const pub = key.publicKey;
    for (const form of [pub.toPem(), pub.toBase64(), toHex(pub.raw), pub.raw]) {
      expect(Ed25519PublicKey.from(form).equals(pub)).toBe(true);
    }
  });

  it('names a key by the first 16 hex of the SHA-256 of its raw bytes', () => {
    const key = Ed25519PrivateKey.generate();
    expect(key.keyid).toBe(sha256Hex(key.publicKey.raw).slice(0, 16));
    expect(keyIdOf(key.publicKey.raw)).toBe(key.keyid);
  });

  it('refuses malformed keys with KEY_INVALID', () => {
    const key = Ed25519PrivateKey.generate();
    const cases: (() => unknown)[] = [
      () => Ed25519PublicKey.from('not a key'),
      () => Ed25519PublicKey.from(new Uint8Array(31)),
      () => Ed25519PublicKey.from(key.toPem()),
      () => Ed25519PrivateKey.from('AAAA'),
      () => Ed25519PrivateKey.from(key.publicKey.toPem()),
      () => Ed25519PrivateKey.from(Buffer.concat([key.exportSeed(), new Uint8Array(32)]).toString('base64')),
    ];
    for (const make of cases) {
      let caught: unknown;
      try {
        make();
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(CryptoError);
      expect((caught as CryptoError).code).toBe('KEY_INVALID');
    }
  });

  it('accepts exactly one PEM block and nothing around it', () => {
    const key = Ed25519PrivateKey.generate();
    expect(Ed25519PublicKey.from(`\n${key.publicKey.toPem()}\n`).keyid).toBe(key.keyid);
    expect(Ed25519PublicKey.from(key.publicKey.toPem().replace(/\n/g, '\r\n')).keyid).toBe(key.keyid);
    const other = Ed25519PrivateKey.generate();
    for (const text of [`junk\n${key.publicKey.toPem()}`, `${key.publicKey.toPem()}${other.publicKey.toPem()}`, key.publicKey.toPem().replace('M', 'M=')]) {
      expectError(() => Ed25519PublicKey.from(text), CryptoError, 'KEY_INVALID');
    }
    expectError(() => Ed25519PrivateKey.from(`${key.toPem()}${other.toPem()}`), CryptoError, 'KEY_INVALID');
  });

  it('never prints the private key', async () => {
    const key = Ed25519PrivateKey.generate();
    const { inspect } = await import('node:util');
    const seedB64 = Buffer.from(key.exportSeed()).toString('base64');
    const seedHex = toHex(key.exportSeed());
    for (const text of [JSON.stringify(key), inspect(key), inspect({ nested: key }, { depth: 5 }), Object.prototype.toString.call(key) + inspect([key])]) {
      expect(text).not.toContain(seedB64);
      expect(text).not.toContain(seedHex);
    }
  });
});
