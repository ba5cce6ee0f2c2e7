// Keys in AWS KMS, through the built drover CLI and the real @aws-sdk/client-kms, against the
// KMS-protocol peer of test/fakes/kms-peer.ts (JSON 1.1, SigV4 checked, real Ed25519 keys; no
// KMS-compatible server installs here). `drover keygen --awskms` exports a KMS key's public key,
// `drover release sign --key awskms:...` signs with it (alone, and 2-of-2 beside a key file), and
// what it signs verifies with `drover release verify` and `openssl pkeyutl`. A manager whose nonce
// and audit keys are in KMS keeps no private key on disk. Each refusal has its code and leaves no
// output file. What this leaves untested against AWS itself: docs/operations.md.

import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetPublicKeyCommand, KMSClient, SignCommand } from '@aws-sdk/client-kms';
import { Ed25519PublicKey, RELEASE_PAYLOAD_TYPE, parseEnvelope, pae } from '@drover/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKmsPeer } from '../fakes/kms-peer.js';
import type { KmsPeer, KmsPeerKey } from '../fakes/kms-peer.js';
import { drover, expectOk } from '../helpers/cli.js';
import type { RunResult } from '../helpers/cli.js';
import { errorCode, filesUnder, opensslVerify, runExternalKeyManager, tool } from '../helpers/signing-services.js';

const ARTIFACT = Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 31 + 7) & 0xff));
const SIGN_ARGS = ['--artifact', 'agent', '--version', '1.4.0', '--platform', 'linux-x64'];

describe('keys in AWS KMS (the KMS-protocol peer), through the drover CLI', () => {
  let peer: KmsPeer;
  let dir = '';
  let release: KmsPeerKey;
  let env: NodeJS.ProcessEnv;
  const cli = (args: string[], extra: NodeJS.ProcessEnv = {}): Promise<RunResult> => drover(args, { cwd: dir, env: { ...env, ...extra } });
  const signCalls = (): number => peer.calls.filter((call) => call.operation === 'Sign').length;

  beforeAll(async () => {
    peer = await startKmsPeer();
    dir = await mkdtemp(join(tmpdir(), 'drover-kms-'));
    // Only the peer's credentials and endpoint: nothing of the machine's own AWS configuration.
    env = { PATH: process.env['PATH'], HOME: dir, AWS_CONFIG_FILE: join(dir, 'no-aws-config'), AWS_SHARED_CREDENTIALS_FILE: join(dir, 'no-aws-credentials'), AWS_EC2_METADATA_DISABLED: 'true', ...peer.env };
    release = peer.addKey('ECC_NIST_EDWARDS25519', { alias: 'alias/drover-release' });
    await writeFile(join(dir, 'agent.tar.gz'), ARTIFACT);
    await writeFile(join(dir, 'release.kms.pem'), release.publicKeyPem);
    expectOk(await cli(['keygen', '--awskms', 'awskms:alias/drover-release', '--out', 'keys', '--name', 'kms']), 'keygen --awskms');
  });

  afterAll(async () => {
    await peer.close();
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  });

  it('keygen --awskms writes only public key files, holding the key KMS reports (by alias, id and ARN alike)', async () => {
    expect(existsSync(join(dir, 'keys/kms.pub'))).toBe(true);
    expect(existsSync(join(dir, 'keys/kms.minisign.pub'))).toBe(true);
    expect(existsSync(join(dir, 'keys/kms.key'))).toBe(false);
    const pub = Ed25519PublicKey.from(await readFile(join(dir, 'keys/kms.pub'), 'utf8'));
    // The same key the peer holds: its SPKI, as openssl would read it.
    expect(pub.toPem().trim()).toBe(release.publicKeyPem.trim());
    for (const name of [`awskms:${release.keyId}`, `awskms:${release.arn}`, `awskms:///${release.keyId}`]) {
      const made = JSON.parse(expectOk(await cli(['keygen', '--awskms', name, '--out', 'keys', '--name', 'again', '--force', '--json']), `keygen ${name}`).stdout) as { keyid: string; keyArn: string };
      expect([made.keyid, made.keyArn]).toEqual([pub.keyid, release.arn]);
    }
  });

  it('keygen --awskms --algorithm rsa-sha256 writes the RSA audit key KMS reports (NAME.pub only), and refuses an Ed25519 key for it', async () => {
    const rsa = peer.addKey('RSA_2048', { alias: 'alias/audit-rsa-keygen' });
    const made = JSON.parse(expectOk(await cli(['keygen', '--awskms', 'awskms:alias/audit-rsa-keygen', '--algorithm', 'rsa-sha256', '--out', 'keys', '--name', 'audit-rsa', '--json']), 'keygen --awskms rsa').stdout) as { kid: string; bits: number; publicKey: string; files: Record<string, string> };
    expect([made.bits, made.publicKey, Object.keys(made.files)]).toEqual([2048, rsa.publicKeyDer.toString('base64'), ['publicKey']]);
    expect((await readFile(join(dir, 'keys/audit-rsa.pub'), 'utf8')).trim()).toBe(rsa.publicKeyPem.trim());
    expect(existsSync(join(dir, 'keys/audit-rsa.minisign.pub'))).toBe(false);
    const refused = await cli(['keygen', '--awskms', 'awskms:alias/drover-release', '--algorithm', 'rsa-sha256', '--out', 'keys', '--name', 'not-rsa']);
    expect([refused.code, refused.stderr]).toEqual([1, expect.stringContaining('KMS_KEY_SPEC_UNSUPPORTED') as unknown]);
    expect(existsSync(join(dir, 'keys/not-rsa.pub'))).toBe(false);
  });

  it('signs a release through KMS Sign; drover verifies it, and openssl verifies the same signature from the exported public key', async () => {
    const before = signCalls();
    expectOk(await cli(['release', 'sign', '--key', 'awskms:alias/drover-release', ...SIGN_ARGS, '--out', 'one.release.json', 'agent.tar.gz']), 'release sign');
    // The signature came from the peer, not from a key this side holds.
    expect(signCalls()).toBe(before + 1);
    const verified = expectOk(await cli(['release', 'verify', '--pub', 'keys/kms.pub', '--release', 'one.release.json', 'agent.tar.gz']), 'release verify');
    expect(verified.stdout).toMatch(/^VERIFIED agent 1\.4\.0 for linux-x64/);

    const envelope = parseEnvelope(await readFile(join(dir, 'one.release.json')));
    const sig = Buffer.from(envelope.signatures[0]?.sig ?? '', 'base64');
    expect(sig).toHaveLength(64);
    expect(envelope.signatures[0]?.keyid).toBe(Ed25519PublicKey.from(release.publicKeyPem).keyid);
    const message = pae(RELEASE_PAYLOAD_TYPE, Buffer.from(envelope.payload, 'base64'));
    const accepted = await opensslVerify(dir, 'release.kms.pem', 'one', message, sig);
    expect(accepted.status, accepted.stderr).toBe(0);
    expect(accepted.stdout).toContain('Signature Verified Successfully');
    // Other bytes: refused, so the check above can fail.
    expect((await opensslVerify(dir, 'release.kms.pem', 'other', Buffer.concat([message, Buffer.from(' ')]), sig)).status).not.toBe(0);
  });

  it('k-of-n: a KMS key and a key file meet a 2-of-2 policy; the KMS signature alone does not', async () => {
    expectOk(await cli(['keygen', '--out', 'keys', '--name', 'file']), 'file keygen');
    expectOk(await cli(['trust', 'create', '--pub', 'keys/kms.pub', '--pub', 'keys/file.pub', '--threshold', '2', '--out', 'trust.json']), 'trust create');
    expectOk(await cli(['release', 'sign', '--key', 'keys/file.key', '--key', `awskms:${release.arn}`, ...SIGN_ARGS, '--out', 'two.release.json', 'agent.tar.gz']), 'sign with KMS and a file');
    const verified = JSON.parse(expectOk(await cli(['release', 'verify', '--trust', 'trust.json', '--release', 'two.release.json', '--json', 'agent.tar.gz']), 'verify 2-of-2').stdout) as { signers: string[] };
    const kms = Ed25519PublicKey.from(await readFile(join(dir, 'keys/kms.pub'), 'utf8'));
    const file = Ed25519PublicKey.from(await readFile(join(dir, 'keys/file.pub'), 'utf8'));
    expect(verified.signers.sort()).toEqual([kms.keyid, file.keyid].sort());
    expect(errorCode(await cli(['release', 'verify', '--trust', 'trust.json', '--release', 'one.release.json', '--json', 'agent.tar.gz']))).toBe('RELEASE_THRESHOLD_NOT_MET');
  });

  it('minisign sign --key awskms:... writes a signature the real minisign accepts with the exported key', async (context) => {
    if (tool('minisign', ['-v'], dir).status !== 0) {
      if (process.env['DROVER_REQUIRE_INTEROP'] === '1') throw new Error('minisign is not on PATH');
      context.skip();
    }
    expectOk(await cli(['minisign', 'sign', '--key', 'awskms:alias/drover-release', '--trusted-comment', 'from KMS', 'agent.tar.gz']), 'minisign sign');
    const accepted = tool('minisign', ['-V', '-H', '-m', 'agent.tar.gz', '-p', 'keys/kms.minisign.pub'], dir);
    expect(accepted.status, accepted.stderr).toBe(0);
    expect(accepted.stdout).toContain('Trusted comment: from KMS');
    // Another key's public file refuses it: the acceptance above is the KMS key's.
    expect(tool('minisign', ['-V', '-m', 'agent.tar.gz', '-p', 'keys/file.minisign.pub'], dir).status).not.toBe(0);
  });

  it('a manager whose nonce and audit keys are in KMS: no private key on its disk; its nonces and audit records verify (drover, openssl)', async () => {
    const nonceKey = peer.addKey('ECC_NIST_EDWARDS25519', { alias: 'alias/manager-nonce' });
    const auditKey = peer.addKey('ECC_NIST_EDWARDS25519');
    await writeFile(join(dir, 'nonce.kms.pem'), nonceKey.publicKeyPem);
    await writeFile(join(dir, 'audit.kms.pem'), auditKey.publicKeyPem);
    const noncePub = Ed25519PublicKey.from(nonceKey.publicKeyPem);
    const auditPub = Ed25519PublicKey.from(auditKey.publicKeyPem);
    expectOk(await cli(['trust', 'create', '--pub', 'keys/kms.pub', '--out', 'trust-kms.json']), 'trust create');
    const mgr = join(dir, 'mgr');
    const init = JSON.parse(
      expectOk(await cli(['manager', 'init', '--dir', mgr, '--trust', 'trust-kms.json', '--signing-key', 'awskms:alias/manager-nonce', '--audit-key', `awskms:${auditKey.arn}`, '--json']), 'manager init').stdout,
    ) as { enrollmentToken: string; managerKeyId: string; auditKeyId: string };
    expect([init.managerKeyId, init.auditKeyId]).toEqual([noncePub.keyid, auditPub.keyid]);
    expect(existsSync(join(mgr, 'keys/manager.key'))).toBe(false);
    expect(existsSync(join(mgr, 'keys/audit.key'))).toBe(false);
    const files = await filesUnder(mgr);
    for (const file of files) {
      const text = await readFile(file, 'latin1');
      expect(text, file).not.toContain('PRIVATE KEY');
      // Nor the AWS credentials it ran with.
      expect(text, file).not.toContain(peer.secretAccessKey);
    }
    const config = JSON.parse(await readFile(join(mgr, 'manager.json'), 'utf8')) as { paths: Record<string, string> };
    expect([config.paths['managerKey'], config.paths['auditKey']]).toEqual(['awskms:alias/manager-nonce', `awskms:${auditKey.arn}`]);
    expect(Ed25519PublicKey.from(await readFile(join(mgr, 'keys/manager.key.pub'), 'utf8')).keyid).toBe(noncePub.keyid);

    const nonceSigns = (): number => peer.calls.filter((call) => call.operation === 'Sign' && call.keyId === 'alias/manager-nonce').length;
    const signsBefore = nonceSigns();
    await runExternalKeyManager({
      dir,
      mgr,
      env,
      enrollmentToken: init.enrollmentToken,
      noncePubPath: 'nonce.kms.pem',
      auditPubPath: 'audit.kms.pem',
      releaseKey: 'awskms:alias/drover-release',
      cli,
      // The nonce was signed by KMS, with the manager's key.
      afterQueued: () => {
        expect(nonceSigns()).toBe(signsBefore + 1);
      },
      afterStop: (output) => {
        expect(output).not.toContain(peer.secretAccessKey);
      },
    });

    // Started again with credentials KMS refuses, the manager does not start, and says why.
    const wrongSecret = randomBytes(30).toString('base64');
    const refused = await cli(['manager', 'start', '--dir', mgr], { AWS_SECRET_ACCESS_KEY: wrongSecret });
    expect(refused.code, refused.stdout + refused.stderr).not.toBe(0);
    expect(refused.stdout + refused.stderr).toContain('KMS_ACCESS_DENIED');
    expect(refused.stdout + refused.stderr).not.toContain(wrongSecret);
  });

  describe('each refusal has its code, shows no credential, and writes nothing', () => {
    const refusedSign = async (key: string, out: string, extra: NodeJS.ProcessEnv = {}): Promise<string> => {
      // The file key signs first: a KMS key that then fails must still leave no envelope.
      const result = await cli(['release', 'sign', '--key', 'keys/file.key', '--key', key, ...SIGN_ARGS, '--out', out, '--json', 'agent.tar.gz'], extra);
      expect(existsSync(join(dir, out)), 'no partial envelope').toBe(false);
      expect(result.stdout + result.stderr).not.toContain(peer.secretAccessKey);
      return errorCode(result);
    };

    it('an unknown key or alias: KMS_KEY_NOT_FOUND', async () => {
      expect(await refusedSign('awskms:alias/no-such-key', 'unknown-alias.release.json')).toBe('KMS_KEY_NOT_FOUND');
      expect(await refusedSign('awskms:0b6f1c1e-0000-4000-8000-000000000000', 'unknown-id.release.json')).toBe('KMS_KEY_NOT_FOUND');
      // The ARN of a key in another account: not this KMS's.
      expect(await refusedSign(`awskms:${release.arn.replace(peer.account, '444455556666')}`, 'other-account.release.json')).toBe('KMS_KEY_NOT_FOUND');
    });

    it('a wrong secret (the peer checks the SigV4 signature), an unknown access key, or a key policy that denies: KMS_ACCESS_DENIED', async () => {
      const wrongSecret = randomBytes(30).toString('base64');
      const result = await cli(['release', 'sign', '--key', 'awskms:alias/drover-release', ...SIGN_ARGS, '--out', 'wrong-secret.release.json', '--json', 'agent.tar.gz'], { AWS_SECRET_ACCESS_KEY: wrongSecret });
      expect(errorCode(result)).toBe('KMS_ACCESS_DENIED');
      expect(result.stdout).toContain('InvalidSignatureException');
      expect(result.stdout + result.stderr).not.toContain(wrongSecret);
      expect(existsSync(join(dir, 'wrong-secret.release.json'))).toBe(false);
      expect(await refusedSign('awskms:alias/drover-release', 'unknown-akid.release.json', { AWS_ACCESS_KEY_ID: 'AKIAUNKNOWNUNKNOWN00' })).toBe('KMS_ACCESS_DENIED');
      const denied = peer.addKey('ECC_NIST_EDWARDS25519', { alias: 'alias/denied' });
      peer.deny.add(denied.keyId);
      expect(await refusedSign('awskms:alias/denied', 'denied.release.json')).toBe('KMS_ACCESS_DENIED');
    });

    it('a key of another spec (RSA, P-256, symmetric): KMS_KEY_SPEC_UNSUPPORTED, and nothing is sent to Sign', async () => {
      peer.addKey('RSA_2048', { alias: 'alias/rsa' });
      peer.addKey('ECC_NIST_P256', { alias: 'alias/p256' });
      peer.addKey('SYMMETRIC_DEFAULT', { alias: 'alias/symmetric' });
      const before = signCalls();
      expect(await refusedSign('awskms:alias/rsa', 'rsa.release.json')).toBe('KMS_KEY_SPEC_UNSUPPORTED');
      expect(await refusedSign('awskms:alias/p256', 'p256.release.json')).toBe('KMS_KEY_SPEC_UNSUPPORTED');
      expect(await refusedSign('awskms:alias/symmetric', 'symmetric.release.json')).toBe('KMS_KEY_SPEC_UNSUPPORTED');
      expect(signCalls()).toBe(before);
    });

    it('a disabled key: KMS_KEY_DISABLED', async () => {
      peer.addKey('ECC_NIST_EDWARDS25519', { alias: 'alias/disabled', enabled: false });
      expect(await refusedSign('awskms:alias/disabled', 'disabled.release.json')).toBe('KMS_KEY_DISABLED');
    });

    it('KMS down (nothing listening): KMS_UNREACHABLE', async () => {
      const gone = await startKmsPeer();
      const endpoint = gone.endpoint;
      await gone.close();
      expect(await refusedSign('awskms:alias/drover-release', 'down.release.json', { DROVER_KMS_ENDPOINT: endpoint })).toBe('KMS_UNREACHABLE');
    });

    it('no region, or a malformed name: KMS_REGION_MISSING, KMS_KEY_NAME_INVALID', async () => {
      expect(await refusedSign('awskms:alias/drover-release', 'no-region.release.json', { AWS_REGION: '' })).toBe('KMS_REGION_MISSING');
      expect(await refusedSign('awskms:not a key', 'bad-name.release.json')).toBe('KMS_KEY_NAME_INVALID');
    });

    it('a message over the 4096 bytes KMS signs raw (a release with a long changelog): KMS_MESSAGE_TOO_LARGE before any Sign', async () => {
      await writeFile(join(dir, 'long-changelog.txt'), Array.from({ length: 120 }, (_, i) => `fix: entry ${i} of a long changelog`).join('\n'));
      const before = signCalls();
      const result = await cli(['release', 'sign', '--key', 'awskms:alias/drover-release', ...SIGN_ARGS, '--changelog-file', 'long-changelog.txt', '--out', 'long.release.json', '--json', 'agent.tar.gz']);
      expect(errorCode(result)).toBe('KMS_MESSAGE_TOO_LARGE');
      expect(signCalls()).toBe(before);
      expect(existsSync(join(dir, 'long.release.json'))).toBe(false);
    });

    it('a signature that does not verify under the key (a misbehaving service): KMS_FAILED, checked before anything is written', async () => {
      peer.corruptSignatures = true;
      try {
        const before = signCalls();
        expect(await refusedSign('awskms:alias/drover-release', 'corrupt.release.json')).toBe('KMS_FAILED');
        expect(signCalls()).toBe(before + 1);
      } finally {
        peer.corruptSignatures = false;
      }
    });

    it('manager init with a KMS key it cannot use: its code, and no manager directory', async () => {
      expect(errorCode(await cli(['manager', 'init', '--dir', join(dir, 'mgr-bad'), '--signing-key', 'awskms:alias/no-such-key', '--json']))).toBe('KMS_KEY_NOT_FOUND');
      expect(errorCode(await cli(['manager', 'init', '--dir', join(dir, 'mgr-bad'), '--audit-key', 'awskms:alias/rsa', '--json']))).toBe('KMS_KEY_SPEC_UNSUPPORTED');
      expect(existsSync(join(dir, 'mgr-bad'))).toBe(false);
    });
  });

  describe('the peer refuses what AWS refuses (asked directly with the real SDK)', () => {
    const client = (secret = peer.secretAccessKey, accessKeyId = peer.accessKeyId): KMSClient =>
      new KMSClient({ region: peer.region, endpoint: peer.endpoint, credentials: { accessKeyId, secretAccessKey: secret }, maxAttempts: 1 });
    const refusal = async (promise: Promise<unknown>): Promise<string> => {
      try {
        await promise;
      } catch (error) {
        return (error as Error).name;
      }
      return 'accepted';
    };

    it('signs Ed25519 over RAW and hands out the SPKI; refuses a wrong algorithm, a digest, an oversized message, a wrong signature', async () => {
      const kms = client();
      const message = Buffer.from('hello');
      const signed = await kms.send(new SignCommand({ KeyId: 'alias/drover-release', Message: message, MessageType: 'RAW', SigningAlgorithm: 'ED25519_SHA_512' }));
      expect(Ed25519PublicKey.from(release.publicKeyPem).verify(message, signed.Signature ?? new Uint8Array())).toBe(true);
      const spki = await kms.send(new GetPublicKeyCommand({ KeyId: release.keyId }));
      expect(Buffer.from(spki.PublicKey ?? new Uint8Array()).equals(release.publicKeyDer)).toBe(true);
      expect(await refusal(kms.send(new SignCommand({ KeyId: 'alias/drover-release', Message: message, MessageType: 'RAW', SigningAlgorithm: 'ECDSA_SHA_256' })))).toBe('InvalidKeyUsageException');
      expect(await refusal(kms.send(new SignCommand({ KeyId: 'alias/rsa', Message: message, MessageType: 'RAW', SigningAlgorithm: 'ED25519_SHA_512' })))).toBe('InvalidKeyUsageException');
      expect(await refusal(kms.send(new SignCommand({ KeyId: 'alias/drover-release', Message: Buffer.alloc(32), MessageType: 'DIGEST', SigningAlgorithm: 'ED25519_SHA_512' })))).toBe('ValidationException');
      expect(await refusal(kms.send(new SignCommand({ KeyId: 'alias/drover-release', Message: Buffer.alloc(4097), MessageType: 'RAW', SigningAlgorithm: 'ED25519_SHA_512' })))).toBe('ValidationException');
      expect(await refusal(kms.send(new SignCommand({ KeyId: 'alias/symmetric', Message: message, MessageType: 'RAW', SigningAlgorithm: 'ED25519_SHA_512' })))).toBe('InvalidKeyUsageException');
      expect(await refusal(kms.send(new GetPublicKeyCommand({ KeyId: 'alias/symmetric' })))).toBe('UnsupportedOperationException');
      expect(await refusal(kms.send(new GetPublicKeyCommand({ KeyId: 'alias/disabled' })))).toBe('DisabledException');
      expect(await refusal(client(randomBytes(30).toString('base64')).send(new GetPublicKeyCommand({ KeyId: release.keyId })))).toBe('InvalidSignatureException');
      expect(await refusal(client(peer.secretAccessKey, 'AKIAOTHEROTHEROTHER0').send(new GetPublicKeyCommand({ KeyId: release.keyId })))).toBe('UnrecognizedClientException');
      // A request signed for another region is refused even with the right secret.
      const otherRegion = new KMSClient({ region: 'us-east-2', endpoint: peer.endpoint, credentials: { accessKeyId: peer.accessKeyId, secretAccessKey: peer.secretAccessKey }, maxAttempts: 1 });
      expect(await refusal(otherRegion.send(new GetPublicKeyCommand({ KeyId: release.keyId })))).toBe('InvalidSignatureException');
    });

    it('refuses a request whose body was changed after signing (the SigV4 check covers the payload)', async () => {
      const kms = client();
      // Rewrites the signed body on its way out (and its declared hash, so that the signature is
      // what the peer finds wrong): the signature no longer matches what arrives.
      kms.middlewareStack.add(
        (next) => async (args) => {
          const request = args.request as { body?: Uint8Array; headers: Record<string, string> };
          const body = Buffer.from(Buffer.from(request.body ?? new Uint8Array()).toString('utf8').replace('alias/drover-release', 'alias/drover-relea5e'));
          request.body = body;
          request.headers['x-amz-content-sha256'] = createHash('sha256').update(body).digest('hex');
          return next(args);
        },
        { step: 'deserialize', name: 'tamper' },
      );
      expect(await refusal(kms.send(new GetPublicKeyCommand({ KeyId: 'alias/drover-release' })))).toBe('InvalidSignatureException');
      // Untouched, the same client's request goes through: the refusal above is the tampering's.
      kms.middlewareStack.remove('tamper');
      expect(await refusal(kms.send(new GetPublicKeyCommand({ KeyId: 'alias/drover-release' })))).toBe('accepted');
    });
  });
});
