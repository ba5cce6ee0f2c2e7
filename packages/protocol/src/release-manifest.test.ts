import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { expectError, expectRejection } from '../../../test/helpers/expect-error.js';
import { fromBase64, toBase64 } from './bytes.js';
import { pae, parseEnvelope, parseTrustPolicy, trustPolicyDocument, verifyEnvelope } from './dsse.js';
import { Ed25519PrivateKey } from './ed25519.js';
import { ReleaseError } from './errors.js';
import { ArtifactVerifier, RELEASE_PAYLOAD_TYPE, createReleasePayload, signRelease, verifyArtifactStream, verifyRelease } from './release-manifest.js';
import type { DsseEnvelope } from './schemas/releases.js';

const artifactBytes = new TextEncoder().encode('#!/bin/sh\necho agent v1.2.0\n'.repeat(100));
const file = { name: 'agent', size: artifactBytes.length, sha256: createHash('sha256').update(artifactBytes).digest('hex') };
const k1 = Ed25519PrivateKey.generate();
const k2 = Ed25519PrivateKey.generate();
const k3 = Ed25519PrivateKey.generate();
const stranger = Ed25519PrivateKey.generate();
const policy1 = parseTrustPolicy(trustPolicyDocument([k1.publicKey]));
const policy2of3 = parseTrustPolicy(trustPolicyDocument([k1.publicKey, k2.publicKey, k3.publicKey], 2));
const now = new Date('2026-11-24T12:00:00Z');
const expect1 = { artifact: 'agent', platform: 'linux-x64', runningVersion: '1.1.0', now };

function release(overrides: Partial<Parameters<typeof createReleasePayload>[0]> = {}, keys = [k1]): DsseEnvelope {
  const payload = createReleasePayload({ artifact: 'agent', version: '1.2.0', platform: 'linux-x64', file, createdAt: new Date('2026-11-20T00:00:00Z'), ...overrides });
  return signRelease(payload, keys);
}

describe('release verification', () => {
  it('accepts a release signed by a trusted key and returns its manifest', () => {
    const manifest = verifyRelease(release(), policy1, expect1);
    expect(manifest).toMatchObject({ artifact: 'agent', version: '1.2.0', platform: 'linux-x64', channel: 'stable', file });
  });

  it('survives a round trip through JSON text', () => {
    const envelope = parseEnvelope(JSON.stringify(release()));
    expect(verifyRelease(envelope, policy1, expect1).version).toBe('1.2.0');
  });

  it('refuses a flipped byte in the signed payload: RELEASE_SIGNATURE_INVALID', () => {
    const envelope = release();
    const payload = fromBase64(envelope.payload) ?? new Uint8Array();
    payload[40] = (payload[40] ?? 0) ^ 1;
    expectError(() => verifyRelease({ ...envelope, payload: toBase64(payload) }, policy1, expect1), ReleaseError, 'RELEASE_SIGNATURE_INVALID');
  });

  it('refuses any flipped byte in payload or signature (property)', () => {
    const envelope = release();
    const payload = fromBase64(envelope.payload) ?? new Uint8Array();
    const sig = fromBase64(envelope.signatures[0]?.sig ?? '') ?? new Uint8Array();
    fc.assert(
      fc.property(fc.nat(), fc.integer({ min: 1, max: 255 }), fc.boolean(), (position, mask, inSig) => {
        const p = new Uint8Array(payload);
        const s = new Uint8Array(sig);
        const target = inSig ? s : p;
        const index = position % target.length;
        target[index] = (target[index] ?? 0) ^ mask;
        const tampered = { ...envelope, payload: toBase64(p), signatures: [{ keyid: k1.keyid, sig: toBase64(s) }] };
        expect(() => verifyRelease(tampered, policy1, expect1)).toThrow(ReleaseError);
      }),
      { numRuns: 300 },
    );
  });

  it('refuses a release signed only by an untrusted key: RELEASE_UNTRUSTED_SIGNER', () => {
    expectError(() => verifyRelease(release({}, [stranger]), policy1, expect1), ReleaseError, 'RELEASE_UNTRUSTED_SIGNER');
  });

  it('refuses an untrusted key that claims a trusted key id: RELEASE_SIGNATURE_INVALID', () => {
    const envelope = release({}, [stranger]);
    const forged = { ...envelope, signatures: envelope.signatures.map((s) => ({ ...s, keyid: k1.keyid })) };
    expectError(() => verifyRelease(forged, policy1, expect1), ReleaseError, 'RELEASE_SIGNATURE_INVALID');
  });

  it('needs k distinct trusted keys: RELEASE_THRESHOLD_NOT_MET', () => {
    expectError(() => verifyRelease(release({}, [k1]), policy2of3, expect1), ReleaseError, 'RELEASE_THRESHOLD_NOT_MET');
    expectError(() => verifyRelease(release({}, [k1, stranger]), policy2of3, expect1), ReleaseError, 'RELEASE_THRESHOLD_NOT_MET');
    // The same signature twice is one key, not two.
    const once = release({}, [k1]);
    const doubled = { ...once, signatures: [once.signatures[0], once.signatures[0]].filter((s) => s !== undefined) };
    expectError(() => verifyRelease(doubled, policy2of3, expect1), ReleaseError, 'RELEASE_THRESHOLD_NOT_MET');
    expect(verifyRelease(release({}, [k1, k3]), policy2of3, expect1).version).toBe('1.2.0');
  });

  it('supports key rotation: old and new keys sign during the overlap', () => {
    const rotated = parseTrustPolicy(trustPolicyDocument([k2.publicKey]));
    const both = release({}, [k1, k2]);
    expect(verifyRelease(both, policy1, expect1).version).toBe('1.2.0');
    expect(verifyRelease(both, rotated, expect1).version).toBe('1.2.0');
  });

  it('refuses another artifact: RELEASE_WRONG_ARTIFACT', () => {
    expectError(() => verifyRelease(release({ artifact: 'daemon' }), policy1, expect1), ReleaseError, 'RELEASE_WRONG_ARTIFACT');
  });

  it('refuses another platform: RELEASE_WRONG_PLATFORM', () => {
    expectError(() => verifyRelease(release({ platform: 'linux-arm64' }), policy1, expect1), ReleaseError, 'RELEASE_WRONG_PLATFORM');
  });

  it('refuses an expired release: RELEASE_EXPIRED', () => {
    const envelope = release({ createdAt: new Date('2026-01-01T00:00:00Z'), expiresInSeconds: 86400 });
    expectError(() => verifyRelease(envelope, policy1, expect1), ReleaseError, 'RELEASE_EXPIRED');
  });

  it('refuses a lower or equal version without a rollback nonce: DOWNGRADE_REFUSED', () => {
    expectError(() => verifyRelease(release({ version: '1.0.0' }), policy1, expect1), ReleaseError, 'DOWNGRADE_REFUSED');
    expectError(() => verifyRelease(release({ version: '1.1.0' }), policy1, expect1), ReleaseError, 'DOWNGRADE_REFUSED');
    expectError(() => verifyRelease(release({ version: 'abcdef1' }), policy1, expect1), ReleaseError, 'DOWNGRADE_REFUSED');
    expect(verifyRelease(release({ version: '1.0.0' }), policy1, { ...expect1, rollback: true }).version).toBe('1.0.0');
  });

  it('refuses an envelope of another payload type and malformed envelopes: RELEASE_MALFORMED', () => {
    const envelope = release();
    expectError(() => verifyRelease({ ...envelope, payloadType: 'application/vnd.other+json' }, policy1, expect1), ReleaseError, 'RELEASE_MALFORMED');
    expectError(() => parseEnvelope('{"payloadType":1}'), ReleaseError, 'RELEASE_MALFORMED');
    expectError(() => parseEnvelope('not json'), ReleaseError, 'RELEASE_MALFORMED');
    expectError(() => parseEnvelope({ ...envelope, extra: true }), ReleaseError, 'RELEASE_MALFORMED');
  });

  it('refuses file names that are paths, and versions with whitespace: RELEASE_MALFORMED', () => {
    for (const name of ['..', '.', 'a/b', 'a\\b']) {
      expectError(() => createReleasePayload({ artifact: 'agent', version: '1.2.0', platform: 'linux-x64', file: { ...file, name } }), ReleaseError, 'RELEASE_MALFORMED');
    }
    expect(createReleasePayload({ artifact: 'agent', version: '1.2.0', platform: 'linux-x64', file: { ...file, name: '..agent' } }).file.name).toBe('..agent');
    for (const version of ['1.2.3\n', ' abcdef1', '1.2.3 ']) {
      expect(() => createReleasePayload({ artifact: 'agent', version, platform: 'linux-x64', file })).toThrow();
    }
  });

  it('refuses a correctly signed payload that is not a release manifest: RELEASE_MALFORMED', () => {
    const payload = new TextEncoder().encode(JSON.stringify({ schema: 'drover.release/v1', artifact: 'agent' }));
    const sig = toBase64(k1.sign(pae(RELEASE_PAYLOAD_TYPE, payload)));
    expectError(() => verifyRelease({ payloadType: RELEASE_PAYLOAD_TYPE, payload: toBase64(payload), signatures: [{ keyid: k1.keyid, sig }] }, policy1, expect1), ReleaseError, 'RELEASE_MALFORMED');
  });

  it('checks trust policies: key ids must match and the threshold must be reachable', () => {
    const doc = trustPolicyDocument([k1.publicKey]);
    expectError(() => parseTrustPolicy({ ...doc, keys: [{ keyid: k2.keyid, publicKey: k1.publicKey.toBase64() }] }), ReleaseError, 'TRUST_POLICY_INVALID');
    expectError(() => parseTrustPolicy({ ...doc, threshold: 2 }), ReleaseError, 'TRUST_POLICY_INVALID');
    expectError(() => parseTrustPolicy({ threshold: 1, keys: [] }), ReleaseError, 'TRUST_POLICY_INVALID');
    expect(verifyEnvelope(release(), policy1, RELEASE_PAYLOAD_TYPE).keyids).toEqual([k1.keyid]);
  });
});

describe('artifact verification', () => {
  async function* chunks(bytes: Uint8Array, size: number, counter: { pulled: number }): AsyncGenerator<Uint8Array> {
    for (let i = 0; i < bytes.length; i += size) {
      await Promise.resolve();
      const chunk = bytes.subarray(i, i + size);
      counter.pulled += chunk.length;
      yield chunk;
    }
  }

  it('accepts the exact bytes', async () => {
    const counter = { pulled: 0 };
    await expect(verifyArtifactStream(chunks(artifactBytes, 7, counter), file)).resolves.toEqual({ bytes: file.size });
  });

  it('refuses a flipped byte: ARTIFACT_DIGEST_MISMATCH', async () => {
    const tampered = new Uint8Array(artifactBytes);
    tampered[100] = (tampered[100] ?? 0) ^ 0x20;
    await expectRejection(verifyArtifactStream(chunks(tampered, 64, { pulled: 0 }), file), ReleaseError, 'ARTIFACT_DIGEST_MISMATCH');
  });

  it('refuses a short artifact: ARTIFACT_TOO_SHORT', async () => {
    await expectRejection(verifyArtifactStream(chunks(artifactBytes.subarray(0, 10), 4, { pulled: 0 }), file), ReleaseError, 'ARTIFACT_TOO_SHORT');
  });

  it('stops reading an endless stream after size + 1 bytes: ARTIFACT_TOO_LARGE', async () => {
    let pulled = 0;
    async function* endless(): AsyncGenerator<Uint8Array> {
      for (;;) {
        await Promise.resolve();
        pulled += 1;
        yield new Uint8Array([0x41]);
      }
    }
    await expectRejection(verifyArtifactStream(endless(), file), ReleaseError, 'ARTIFACT_TOO_LARGE');
    expect(pulled).toBe(file.size + 1);
  });

  it('refuses extra bytes even when the prefix matches', () => {
    const verifier = new ArtifactVerifier(file);
    verifier.update(artifactBytes);
    expectError(() => {
      verifier.update(new Uint8Array([0]));
    }, ReleaseError, 'ARTIFACT_TOO_LARGE');
  });
});
