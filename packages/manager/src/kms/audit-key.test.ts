// Audit keys in KMS of each algorithm, in this process, against the KMS peer in a child process
// (the signer blocks its thread while KMS answers). The peer holds RSA_2048 and HMAC_256 keys
// beside the Ed25519 one (test/fakes/kms-peer-process.ts).
import { GenerateMacCommand, KMSClient, SignCommand, VerifyMacCommand } from '@aws-sdk/client-kms';
import { parseAuditSigners, verifyAuditLog, withAuditHmacKeys } from '@drover/protocol';
import { AuditChain, buildAuditSigners } from '@drover/protocol/internal';
import type { AuditRecord } from '@drover/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectError } from '../../../../test/helpers/expect-error.js';
import { startKmsPeerChild } from '../../../../test/helpers/kms-peer-child.js';
import type { KmsPeerChild } from '../../../../test/helpers/kms-peer-child.js';
import { ManagerError } from '../errors.js';
import { openKmsAuditMacKey, openKmsAuditSigner } from './audit-key.js';
import type { ExternalAuditSigner } from './audit-key.js';

let peer: KmsPeerChild;
let env: Record<string, string> = {};
let client: KMSClient;

beforeAll(async () => {
  peer = await startKmsPeerChild();
  ({ env } = peer);
  client = new KMSClient({
    region: env['AWS_REGION'] ?? '',
    endpoint: env['DROVER_KMS_ENDPOINT'] ?? '',
    credentials: { accessKeyId: env['AWS_ACCESS_KEY_ID'] ?? '', secretAccessKey: env['AWS_SECRET_ACCESS_KEY'] ?? '' },
  });
});

afterAll(() => {
  client.destroy();
  peer.stop();
});

async function writeChain(signers: ExternalAuditSigner[], perSigner = 3): Promise<string[]> {
  const lines: string[] = [];
  for (const { signer } of signers) {
    const chain = AuditChain.resume(lines[lines.length - 1], signer);
    for (let i = 0; i < perSigner; i += 1) lines.push((await chain.append({ event: 'agent.checkin', actor: 'system', outcome: 'success', details: { i } })).line);
  }
  return lines;
}

describe('openKmsAuditSigner', () => {
  it('signs rsa-sha256 records through KMS Sign (RSASSA_PKCS1_V1_5_SHA_256); signers.json from GetPublicKey verifies them, after a rotation from Ed25519', async () => {
    const ed = openKmsAuditSigner('awskms:alias/bench', { env });
    const rsa = openKmsAuditSigner('awskms:alias/audit-rsa', { env, algorithm: 'rsa-sha256', kid: 'audit-rsa-kms' });
    try {
      expect([ed.signer.algorithm, rsa.signer.algorithm, rsa.signer.kid]).toEqual(['ed25519', 'rsa-sha256', 'audit-rsa-kms']);
      const lines = await writeChain([ed, rsa]);
      expect((JSON.parse(lines[3] ?? '') as AuditRecord).alg).toBe('rsa-sha256');
      const signers = parseAuditSigners(JSON.stringify(buildAuditSigners([ed, rsa].map(({ signer, publicKey }) => ({ kid: signer.kid, publicKey })))));
      expect(verifyAuditLog(lines.join(''), signers)).toMatchObject({ ok: true, count: 6 });
    } finally {
      ed.close();
      rsa.close();
    }
  });

  it('MACs hmac-sha256 records through KMS GenerateMac; KMS VerifyMac accepts each MAC, and the key never reaches signers.json', async () => {
    const hmac = openKmsAuditSigner('awskms:alias/audit-hmac', { env, algorithm: 'hmac-sha256' });
    try {
      const lines = await writeChain([hmac]);
      const document = buildAuditSigners([{ kid: hmac.signer.kid, publicKey: hmac.publicKey }]);
      expect(document.signers).toStrictEqual([{ kid: hmac.signer.kid, algorithm: 'hmac-sha256' }]);
      // Without the secret (which KMS keeps) a local verifier can only say so.
      expect(verifyAuditLog(lines.join(''), parseAuditSigners(document))).toMatchObject({ ok: false, reason: 'MAC_KEY_MISSING', seq: 1 });
      for (const text of lines) {
        const record = JSON.parse(text) as AuditRecord;
        expect(record.alg).toBe('hmac-sha256');
        const out = await client.send(new VerifyMacCommand({ KeyId: 'alias/audit-hmac', MacAlgorithm: 'HMAC_SHA_256', Message: Buffer.from(record.hash, 'hex'), Mac: Buffer.from(record.sig, 'base64') }));
        expect(out.MacValid).toBe(true);
      }
      // A MAC of another hash: KMS refuses it (as AWS does, by an error).
      const first = JSON.parse(lines[0] ?? '') as AuditRecord;
      const other = Buffer.from(first.hash, 'hex');
      other[0] = (other[0] ?? 0) ^ 1;
      await expect(client.send(new VerifyMacCommand({ KeyId: 'alias/audit-hmac', MacAlgorithm: 'HMAC_SHA_256', Message: other, Mac: Buffer.from(first.sig, 'base64') }))).rejects.toMatchObject({ name: 'KMSInvalidMacException' });
    } finally {
      hmac.close();
    }
  });

  it('a verifier checks hmac-sha256 records through KMS VerifyMac (openKmsAuditMacKey): the same kid as the signer, a changed MAC is SIGNATURE_INVALID', async () => {
    const hmac = openKmsAuditSigner('awskms:alias/audit-hmac', { env });
    const verifier = openKmsAuditMacKey('awskms:alias/audit-hmac', { env });
    try {
      const lines = await writeChain([hmac]);
      expect(verifier.kid).toBe(hmac.signer.kid);
      const keys = withAuditHmacKeys(parseAuditSigners(buildAuditSigners([{ kid: hmac.signer.kid, publicKey: hmac.publicKey }])), new Map([[verifier.kid, verifier.key]]));
      expect(verifyAuditLog(lines.join(''), keys)).toMatchObject({ ok: true, count: 3 });
      expect(verifier.checked).toBe(3);
      // Another 32 bytes where the second record's MAC was: its hash still matches, KMS says the MAC is wrong.
      const second = JSON.parse(lines[1] ?? '') as AuditRecord;
      const forged = Buffer.from(second.sig, 'base64');
      forged[5] = (forged[5] ?? 0) ^ 0x80;
      const tampered = [lines[0], lines[1]?.replace(second.sig, forged.toString('base64')), lines[2]].join('');
      expect(verifyAuditLog(tampered, keys)).toMatchObject({ ok: false, reason: 'SIGNATURE_INVALID', seq: 2 });
    } finally {
      hmac.close();
      verifier.close();
    }
  });

  it('openKmsAuditMacKey refuses a signing key (KMS_KEY_SPEC_UNSUPPORTED); a KMS gone mid-verification stops it with KMS_UNREACHABLE, never a verdict', async () => {
    expectError(() => openKmsAuditMacKey('awskms:alias/audit-rsa', { env }), ManagerError, 'KMS_KEY_SPEC_UNSUPPORTED');
    const other = await startKmsPeerChild();
    const hmac = openKmsAuditSigner('awskms:alias/audit-hmac', { env: other.env });
    const verifier = openKmsAuditMacKey('awskms:alias/audit-hmac', { env: other.env, kid: 'given-kid' });
    try {
      const lines = await writeChain([{ ...hmac, signer: { ...hmac.signer, kid: 'given-kid' } }]);
      const keys = withAuditHmacKeys(new Map(), new Map([[verifier.kid, verifier.key]]));
      expect(verifyAuditLog(lines.join(''), keys)).toMatchObject({ ok: true, count: 3 });
      other.stop();
      await new Promise((resolve) => setTimeout(resolve, 500));
      expectError(() => verifyAuditLog(lines.join(''), keys), ManagerError, 'KMS_UNREACHABLE');
    } finally {
      hmac.close();
      verifier.close();
      other.stop();
    }
  }, 60_000);

  it('the peer refuses what AWS refuses: a mismatched MAC algorithm, GenerateMac on an RSA key, Sign on an HMAC key, PKCS#1 on an Ed25519 key', async () => {
    const message = Buffer.alloc(32, 1);
    await expect(client.send(new GenerateMacCommand({ KeyId: 'alias/audit-hmac', MacAlgorithm: 'HMAC_SHA_384', Message: message }))).rejects.toMatchObject({ name: 'InvalidKeyUsageException' });
    await expect(client.send(new GenerateMacCommand({ KeyId: 'alias/audit-rsa', MacAlgorithm: 'HMAC_SHA_256', Message: message }))).rejects.toMatchObject({ name: 'InvalidKeyUsageException' });
    await expect(client.send(new SignCommand({ KeyId: 'alias/audit-hmac', SigningAlgorithm: 'RSASSA_PKCS1_V1_5_SHA_256', MessageType: 'RAW', Message: message }))).rejects.toMatchObject({ name: 'InvalidKeyUsageException' });
    await expect(client.send(new SignCommand({ KeyId: 'alias/bench', SigningAlgorithm: 'RSASSA_PKCS1_V1_5_SHA_256', MessageType: 'RAW', Message: message }))).rejects.toMatchObject({ name: 'InvalidKeyUsageException' });
  });

  it.each([
    ['a symmetric encryption key', 'awskms:alias/audit-symmetric', undefined],
    ['an HMAC key where rsa-sha256 is configured', 'awskms:alias/audit-hmac', 'rsa-sha256'],
    ['an RSA key where ed25519 is configured', 'awskms:alias/audit-rsa', 'ed25519'],
  ] as const)('refuses %s (KMS_KEY_SPEC_UNSUPPORTED)', (_what, name, algorithm) => {
    expectError(() => openKmsAuditSigner(name, { env, algorithm }), ManagerError, 'KMS_KEY_SPEC_UNSUPPORTED');
  });
});
