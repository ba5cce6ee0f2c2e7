import { createPublicKey } from 'node:crypto';
import { bundleFromJSON, bundleToJSON } from '@sigstore/bundle';
import { DSSEBundleBuilder } from '@sigstore/sign';
import type { Signer } from '@sigstore/sign';
import { Verifier, toSignedEntity, toTrustMaterial } from '@sigstore/verify';
import { describe, expect, it } from 'vitest';
import { expectError } from '../../../test/helpers/expect-error.js';
import { parseEnvelope, parseTrustPolicy, signEnvelope, trustPolicyDocument, verifyEnvelope } from './dsse.js';
import { Ed25519PrivateKey } from './ed25519.js';
import { ReleaseError } from './errors.js';
import type { DsseEnvelope } from './schemas/releases.js';

// Interop both ways with another DSSE implementation, sigstore-js (@sigstore/sign and
// @sigstore/verify): it writes envelopes with standard base64 and leaves `keyid` out when it has
// no key hint; it reads either alphabet. Decision 0034.

const TYPE = 'application/vnd.in-toto+json';
const statement = new TextEncoder().encode(JSON.stringify({ _type: 'https://in-toto.io/Statement/v1', subject: [{ name: 'agent', digest: { sha256: 'ab'.repeat(32) } }] }));
const key = Ed25519PrivateKey.generate();
const other = Ed25519PrivateKey.generate();
const policy = parseTrustPolicy(trustPolicyDocument([other.publicKey, key.publicKey]));

// A sigstore-js signer backed by a drover key: sigstore computes PAE itself and hands us the bytes.
function sigstoreSigner(signingKey: Ed25519PrivateKey, hint?: string): Signer {
  return {
    sign: (data) => Promise.resolve({ signature: Buffer.from(signingKey.sign(new Uint8Array(data))), key: { $case: 'publicKey', publicKey: signingKey.publicKey.toPem(), ...(hint === undefined ? {} : { hint }) } }),
  };
}

async function sigstoreEnvelope(signingKey: Ed25519PrivateKey, hint?: string): Promise<unknown> {
  const bundle = await new DSSEBundleBuilder({ signer: sigstoreSigner(signingKey, hint), witnesses: [] }).create({ data: Buffer.from(statement), type: TYPE });
  return bundleToJSON(bundle).dsseEnvelope;
}

// sigstore-js's own verifier, trusting one public key under a hint and needing no log or timestamp.
function sigstoreVerify(envelope: DsseEnvelope, trusted: Ed25519PrivateKey): void {
  const hint = 'drover-key';
  const bundle = bundleFromJSON({
    mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json',
    verificationMaterial: { publicKey: { hint }, tlogEntries: [], timestampVerificationData: { rfc3161Timestamps: [] } },
    dsseEnvelope: envelope,
  });
  const publicKey = createPublicKey(trusted.publicKey.toPem());
  const trustMaterial = toTrustMaterial(
    { mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1', tlogs: [], certificateAuthorities: [], ctlogs: [], timestampAuthorities: [] },
    (h) => {
      if (h !== hint) throw new Error(`unknown key hint ${h}`);
      return { publicKey, validFor: () => true };
    },
  );
  new Verifier(trustMaterial, { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 }).verify(toSignedEntity(bundle));
}

describe('DSSE interop with sigstore-js', () => {
  it('verifies an envelope sigstore-js signs without a key id', async () => {
    const envelope = await sigstoreEnvelope(key);
    expect(envelope).not.toHaveProperty('signatures.0.keyid');
    const verified = verifyEnvelope(parseEnvelope(JSON.stringify(envelope)), policy, TYPE);
    expect(verified.keyids).toEqual([key.keyid]);
    expect(Buffer.from(verified.payload).toString('utf8')).toBe(Buffer.from(statement).toString('utf8'));
  });

  it('verifies an envelope sigstore-js signs with a key hint as its key id', async () => {
    const named = await sigstoreEnvelope(key, key.keyid);
    expect(named).toHaveProperty('signatures.0.keyid', key.keyid);
    expect(verifyEnvelope(parseEnvelope(JSON.stringify(named)), policy, TYPE).keyids).toEqual([key.keyid]);
    const hinted = await sigstoreEnvelope(key, 'sigstore-hint');
    expect(verifyEnvelope(parseEnvelope(JSON.stringify(hinted)), policy, TYPE).keyids).toEqual([key.keyid]);
  });

  it('refuses an envelope sigstore-js signs with an untrusted key: RELEASE_UNTRUSTED_SIGNER', async () => {
    const envelope = await sigstoreEnvelope(Ed25519PrivateKey.generate());
    expectError(() => verifyEnvelope(parseEnvelope(JSON.stringify(envelope)), policy, TYPE), ReleaseError, 'RELEASE_UNTRUSTED_SIGNER');
  });

  it('an envelope drover signs, standard or URL-safe, verifies in sigstore-js', () => {
    const envelope = signEnvelope(TYPE, statement, [key]);
    sigstoreVerify(envelope, key);
    const url = (text: string): string => text.replace(/\+/g, '-').replace(/\//g, '_');
    sigstoreVerify({ ...envelope, payload: url(envelope.payload), signatures: envelope.signatures.map((s) => ({ ...s, sig: url(s.sig) })) }, key);
    // And sigstore-js refuses it under another key, so the check above is a real one.
    expect(() => {
      sigstoreVerify(envelope, other);
    }).toThrow(/signature/i);
  });
});
