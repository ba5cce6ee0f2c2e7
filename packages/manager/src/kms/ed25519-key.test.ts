// The KMS signer in this process, against the KMS peer in a child process (a KmsSigner blocks its
// thread while KMS answers, so the peer cannot share it).
import { inspect } from 'node:util';
import { RELEASE_PAYLOAD_TYPE, createReleasePayload, parseTrustPolicy, signRelease, trustPolicyDocument, verifyEnvelope } from '@drover/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectError } from '../../../../test/helpers/expect-error.js';
import { startKmsPeerChild } from '../../../../test/helpers/kms-peer-child.js';
import type { KmsPeerChild } from '../../../../test/helpers/kms-peer-child.js';
import { ManagerError } from '../errors.js';
import { openKmsSigner } from './ed25519-key.js';

let peer: KmsPeerChild;
let env: Record<string, string> = {};
let keyName = '';

beforeAll(async () => {
  peer = await startKmsPeerChild();
  ({ env, keyName } = peer);
});

afterAll(() => {
  peer.stop();
});

describe('openKmsSigner', () => {
  it('signs as an Ed25519Signer: a release signed through KMS verifies under the public key GetPublicKey gave', () => {
    const key = openKmsSigner(keyName, { env });
    try {
      expect(key.keyArn).toMatch(/^arn:aws:kms:eu-west-1:\d{12}:key\//);
      expect(key.keyid).toBe(key.publicKey.keyid);
      const payload = createReleasePayload({ artifact: 'agent', version: '1.0.0', platform: 'linux-x64', file: { name: 'a', size: 1, sha256: 'a'.repeat(64) } });
      const envelope = signRelease(payload, [key]);
      const policy = parseTrustPolicy(trustPolicyDocument([key.publicKey], 1));
      expect(verifyEnvelope(envelope, policy, RELEASE_PAYLOAD_TYPE).keyids).toEqual([key.keyid]);
      // Calls are answered in order, each with its own reply.
      for (let i = 0; i < 20; i += 1) {
        const message = Buffer.from(`message ${i}`);
        expect(key.publicKey.verify(message, key.sign(message))).toBe(true);
      }
      // What a log line shows of it: the key id and name, nothing of the credentials.
      expect(JSON.stringify(key)).not.toContain(env['AWS_SECRET_ACCESS_KEY']);
      expect(inspect(key)).not.toContain(env['AWS_SECRET_ACCESS_KEY']);
    } finally {
      key.close();
    }
  });

  it('a closed key refuses to sign at once (KMS_FAILED), instead of waiting for a thread that is gone', () => {
    const key = openKmsSigner(keyName, { env });
    key.close();
    const started = Date.now();
    expectError(() => key.sign(Buffer.from('late')), ManagerError, 'KMS_FAILED');
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('refuses an oversized message before any call, and an unknown key with its code', () => {
    const key = openKmsSigner(keyName, { env });
    try {
      expectError(() => key.sign(new Uint8Array(4097)), ManagerError, 'KMS_MESSAGE_TOO_LARGE');
      expect(key.sign(new Uint8Array(4096))).toHaveLength(64);
    } finally {
      key.close();
    }
    expectError(() => openKmsSigner('awskms:alias/none', { env }), ManagerError, 'KMS_KEY_NOT_FOUND');
  });
});
