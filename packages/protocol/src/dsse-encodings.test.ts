import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { expectError } from '../../../test/helpers/expect-error.js';
import { fromBase64Either, toBase64, toBase64Url } from './bytes.js';
import { parseEnvelope, parseTrustPolicy, signEnvelope, trustPolicyDocument, verifyEnvelope } from './dsse.js';
import { Ed25519PrivateKey } from './ed25519.js';
import { ReleaseError } from './errors.js';
import { limits } from './config.js';
import type { DsseEnvelope } from './schemas/releases.js';

// DSSE as its spec allows (decision 0034): either base64 alphabet, decoded strictly, and key ids
// that are only hints.

const TYPE = 'application/vnd.drover.test+json';
const generated = (count: number): Ed25519PrivateKey[] => Array.from({ length: count }, () => Ed25519PrivateKey.generate());
const [k1, k2, k3, stranger] = generated(4) as [Ed25519PrivateKey, Ed25519PrivateKey, Ed25519PrivateKey, Ed25519PrivateKey];
const trusting = (keys: Ed25519PrivateKey[], threshold = 1): ReturnType<typeof parseTrustPolicy> => parseTrustPolicy(trustPolicyDocument(keys.map((k) => k.publicKey), threshold));
const policy1 = trusting([k1]);
const policy2of3 = trusting([k1, k2, k3], 2);

// Chosen so that its base64 carries '+' and '/' and its URL-safe form '-' and '_'.
const payload = new Uint8Array([0xfb, 0xff, 0xbf, 0x7b, 0x22, 0x61, 0x22, 0x3a, 0x31, 0x7d, 0xfe]);

function urlSafe(envelope: DsseEnvelope, pad = true): DsseEnvelope {
  const convert = (text: string): string => {
    const url = text.replace(/\+/g, '-').replace(/\//g, '_');
    return pad ? url : url.replace(/=+$/, '');
  };
  return { ...envelope, payload: convert(envelope.payload), signatures: envelope.signatures.map((s) => ({ ...s, sig: convert(s.sig) })) };
}

function keyless(envelope: DsseEnvelope): DsseEnvelope {
  return { ...envelope, signatures: envelope.signatures.map(({ sig }) => ({ sig })) };
}

describe('DSSE base64: standard or URL-safe, strictly', () => {
  it('decodes both alphabets, padded or not, to the same bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        const standard = toBase64(bytes);
        const url = toBase64Url(bytes);
        expect(fromBase64Either(standard)).toEqual(bytes);
        expect(fromBase64Either(url)).toEqual(bytes);
        expect(fromBase64Either(standard.replace(/=+$/, ''))).toEqual(bytes);
        expect(fromBase64Either(url + '='.repeat((4 - (url.length % 4)) % 4))).toEqual(bytes);
      }),
      { numRuns: 200 },
    );
  });

  it('refuses a string that mixes the two alphabets, bad padding, stray bits or other characters', () => {
    expect(toBase64(payload)).toMatch(/[+/]/);
    expect(toBase64Url(payload)).toMatch(/[-_]/);
    for (const bad of ['+-AA', '/_AA', 'AA+_', 'A===', 'AA=', 'AAA==', 'AAAA=', 'AAAA==', 'A', 'AB==', 'AAB=', 'AA==AA==', ' AAAA', 'AA\nAA', 'AA.A']) {
      expect(fromBase64Either(bad), bad).toBeUndefined();
    }
  });

  it('verifies an envelope whose payload and signature are URL-safe, padded or not', () => {
    const envelope = signEnvelope(TYPE, payload, [k1]);
    for (const pad of [true, false]) {
      const converted = urlSafe(envelope, pad);
      expect(converted.payload).not.toBe(envelope.payload);
      const verified = verifyEnvelope(parseEnvelope(JSON.stringify(converted)), policy1, TYPE);
      expect(verified.payload).toEqual(payload);
      expect(verified.keyids).toEqual([k1.keyid]);
    }
  });

  it('refuses a payload or signature mixing the alphabets: RELEASE_MALFORMED, RELEASE_SIGNATURE_INVALID', () => {
    const envelope = signEnvelope(TYPE, payload, [k1]);
    const standard = envelope.payload;
    const mixed = standard.replace('+', '-');
    expect(mixed).not.toBe(standard);
    expectError(() => verifyEnvelope({ ...envelope, payload: mixed }, policy1, TYPE), ReleaseError, 'RELEASE_MALFORMED');
    expectError(() => verifyEnvelope({ ...envelope, payload: `${envelope.payload}=` }, policy1, TYPE), ReleaseError, 'RELEASE_MALFORMED');
    const sig = envelope.signatures[0]?.sig ?? '';
    const mixedSig = /[+/]/.test(sig) ? `${sig.replace(/=+$/, '').slice(0, -2)}-_` : `${sig.replace(/=+$/, '').slice(0, -2)}+_`;
    expectError(() => verifyEnvelope({ ...envelope, signatures: [{ keyid: k1.keyid, sig: mixedSig }] }, policy1, TYPE), ReleaseError, 'RELEASE_SIGNATURE_INVALID');
  });
});

describe('DSSE signatures without a key id', () => {
  it('verifies a signature with no key id, or an empty one, against each trusted key', () => {
    const envelope = signEnvelope(TYPE, payload, [k2]);
    const policy = trusting([k1, k3, k2]);
    expect(verifyEnvelope(keyless(envelope), policy, TYPE).keyids).toEqual([k2.keyid]);
    const empty = { ...envelope, signatures: [{ keyid: '', sig: envelope.signatures[0]?.sig ?? '' }] };
    expect(verifyEnvelope(parseEnvelope(JSON.stringify(empty)), policy, TYPE).keyids).toEqual([k2.keyid]);
  });

  it('treats a key id no trusted key has as a hint only', () => {
    const envelope = signEnvelope(TYPE, payload, [k1]);
    const hinted = { ...envelope, signatures: [{ keyid: 'another-tool-s-id', sig: envelope.signatures[0]?.sig ?? '' }] };
    expect(verifyEnvelope(hinted, policy1, TYPE).keyids).toEqual([k1.keyid]);
  });

  it('meets a threshold with keyless signatures by distinct keys, never by one key twice', () => {
    const two = keyless(signEnvelope(TYPE, payload, [k3, k1]));
    expect(verifyEnvelope(two, policy2of3, TYPE).keyids.sort()).toEqual([k1.keyid, k3.keyid].sort());
    const one = keyless(signEnvelope(TYPE, payload, [k1]));
    const doubled = { ...one, signatures: [...one.signatures, ...one.signatures, ...one.signatures] };
    expectError(() => verifyEnvelope(doubled, policy2of3, TYPE), ReleaseError, 'RELEASE_THRESHOLD_NOT_MET');
    // The same key once named and once keyless is still one key.
    const named = signEnvelope(TYPE, payload, [k1]);
    const both = { ...named, signatures: [...named.signatures, ...one.signatures] };
    expectError(() => verifyEnvelope(both, policy2of3, TYPE), ReleaseError, 'RELEASE_THRESHOLD_NOT_MET');
  });

  it('refuses a keyless signature by an untrusted key, or over other bytes: RELEASE_UNTRUSTED_SIGNER', () => {
    expectError(() => verifyEnvelope(keyless(signEnvelope(TYPE, payload, [stranger])), policy1, TYPE), ReleaseError, 'RELEASE_UNTRUSTED_SIGNER');
    const envelope = keyless(signEnvelope(TYPE, payload, [k1]));
    const tampered = { ...envelope, payload: toBase64(new Uint8Array([...payload, 0])) };
    expectError(() => verifyEnvelope(tampered, policy1, TYPE), ReleaseError, 'RELEASE_UNTRUSTED_SIGNER');
  });

  it('keeps a trusted key id binding: an untrusted key claiming it is RELEASE_SIGNATURE_INVALID, not tried elsewhere', () => {
    const forged = signEnvelope(TYPE, payload, [stranger]);
    const claimed = { ...forged, signatures: forged.signatures.map((s) => ({ ...s, keyid: k1.keyid })) };
    expectError(() => verifyEnvelope(claimed, policy1, TYPE), ReleaseError, 'RELEASE_SIGNATURE_INVALID');
  });

  it('bounds the work: at most the policy key count per keyless signature, and a signature cap per envelope', () => {
    const keys = generated(8);
    const policy = trusting(keys);
    let calls = 0;
    for (const key of policy.keys.values()) {
      const verify = key.verify.bind(key);
      Object.defineProperty(key, 'verify', { value: (...args: Parameters<typeof verify>) => ((calls += 1), verify(...args)) });
    }
    const strangers = keyless(signEnvelope(TYPE, payload, generated(limits.releaseMaxSignatures)));
    expectError(() => verifyEnvelope(strangers, policy, TYPE), ReleaseError, 'RELEASE_UNTRUSTED_SIGNER');
    expect(calls).toBe(limits.releaseMaxSignatures * keys.length);
    const tooMany = { ...strangers, signatures: [...strangers.signatures, ...strangers.signatures.slice(0, 1)] };
    calls = 0;
    expectError(() => verifyEnvelope(tooMany, policy, TYPE), ReleaseError, 'RELEASE_MALFORMED');
    expect(calls).toBe(0);
    expectError(() => parseEnvelope(JSON.stringify(tooMany)), ReleaseError, 'RELEASE_MALFORMED');
  });
});
