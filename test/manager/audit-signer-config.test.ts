// The seed's audit signer settings on real manager processes (`drover manager start`): an RSA or
// HMAC audit key from AUDIT_SIGNING_* takes over from the init-time Ed25519 key (a rotation: the old
// records still verify, signers.json keeps both kids), `drover audit verify` reads the keys from
// KERNEL_PUBLIC_KEYS_*, and REQUIRE_KMS=true refuses every key source but KMS or PKCS#11 (KMS_REQUIRED),
// in the manager and in `drover release sign`, with the KMS peer as the key source that passes.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ed25519PrivateKey } from '@drover/protocol';
import type { AuditRecord } from '@drover/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKmsPeer } from '../fakes/kms-peer.js';
import type { KmsPeer } from '../fakes/kms-peer.js';
import { drover, expectOk } from '../helpers/cli.js';
import { initManagerDir, ManagerProcess } from '../helpers/manager-process.js';

const releaseKey = Ed25519PrivateKey.generate();
let root = '';
let baseEnv: NodeJS.ProcessEnv;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'drover-audit-signer-'));
  baseEnv = { PATH: process.env['PATH'], HOME: root, DROVER_ENCRYPTION_KEY: 'p2dkX0ZGTOwsBn3sgqIg0oN0wSrUBKXt3nbLoE6n1Sc=' };
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function records(dir: string): Promise<AuditRecord[]> {
  return (await readFile(join(dir, 'audit/audit.jsonl'), 'utf8'))
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as AuditRecord);
}

// Starts the manager with `env`, lets it write its start record, stops it.
async function runOnce(dir: string, env: NodeJS.ProcessEnv): Promise<string> {
  const manager = await ManagerProcess.start(dir, env);
  const output = manager.output();
  expect(await manager.stop()).toBe(0);
  return output;
}

// `drover manager start` that must refuse: its exit code and the stable code it printed.
async function refusedStart(dir: string, env: NodeJS.ProcessEnv): Promise<string> {
  const result = await drover(['manager', 'start', '--dir', dir, '--port', '0'], { env });
  expect(result.code, result.stdout + result.stderr).not.toBe(0);
  return result.stdout + result.stderr;
}

describe('the audit signer from AUDIT_SIGNING_* (real manager processes)', () => {
  it('rotates a manager from its Ed25519 file key to an rsa-sha256 key (env) and then an hmac-sha256 key (file); audit verify takes the keys from KERNEL_PUBLIC_KEYS_*', async () => {
    const dir = join(root, 'rotate');
    await initManagerDir(dir, releaseKey, baseEnv);
    await runOnce(dir, baseEnv);
    const rsaPem = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    await runOnce(dir, { ...baseEnv, AUDIT_SIGNING_KEY_SOURCE: 'env', AUDIT_SIGNING_ALG: 'rsa-sha256', AUDIT_SIGNER_KID: 'audit-rsa-2026', AUDIT_SIGNING_PRIVATE_KEY: rsaPem });
    const secret = randomBytes(32).toString('base64');
    await writeFile(join(root, 'hmac.key'), `${secret}\n`, { mode: 0o600 });
    const output = await runOnce(dir, { ...baseEnv, AUDIT_SIGNING_KEY_SOURCE: 'file', AUDIT_SIGNING_ALG: 'hmac-sha256', AUDIT_SIGNER_KID: 'audit-hmac-2026', AUDIT_SIGNING_KEY_PATH: join(root, 'hmac.key') });
    expect(output).not.toContain(secret);
    expect(output).not.toContain('PRIVATE KEY');

    const algs = new Set((await records(dir)).map((record) => `${record.alg ?? 'none'}:${record.kid}`));
    expect([...algs].map((entry) => entry.split(':')[0])).toEqual(['ed25519', 'rsa-sha256', 'hmac-sha256']);
    const signersText = await readFile(join(dir, 'audit/signers.json'), 'utf8');
    expect((JSON.parse(signersText) as { signers: { kid: string; algorithm: string }[] }).signers.map((s) => s.algorithm)).toEqual(['ed25519', 'rsa-sha256', 'hmac-sha256']);
    expect(signersText).not.toContain(secret);

    await writeFile(join(root, 'hmac-keys.json'), JSON.stringify({ keys: [{ kid: 'audit-hmac-2026', key: secret }] }), { mode: 0o600 });
    const log = join(dir, 'audit/audit.jsonl');
    const byPath = await drover(['audit', 'verify', '--hmac-key-file', join(root, 'hmac-keys.json'), log], { env: { ...baseEnv, KERNEL_PUBLIC_KEYS_PATH: join(dir, 'audit/signers.json') } });
    expect(byPath.stdout.split('\n')[0], byPath.stderr).toMatch(/^VERIFIED \d+ records$/);
    const inline = await drover(['audit', 'verify', '--json', log], { env: { ...baseEnv, KERNEL_PUBLIC_KEYS_JSON: signersText } });
    expect(JSON.parse(inline.stdout)).toMatchObject({ ok: false, reason: 'MAC_KEY_MISSING' });
    const insecure = await drover(['audit', 'verify', '--json', log], { env: { ...baseEnv, KERNEL_PUBLIC_KEYS_URL: 'http://127.0.0.1:9/signers.json' } });
    expect((JSON.parse(insecure.stdout) as { error: { code: string } }).error.code).toBe('KEY_URL_INSECURE');
  }, 120_000);

  it.each([
    ['an unknown source', { AUDIT_SIGNING_KEY_SOURCE: 'vault' }, 'AUDIT_SIGNER_CONFIG_INVALID'],
    ['kms without a key id', { AUDIT_SIGNING_KEY_SOURCE: 'kms' }, 'AUDIT_SIGNER_CONFIG_INVALID'],
    ['an Ed25519 key where rsa-sha256 is configured', { AUDIT_SIGNING_KEY_SOURCE: 'env', AUDIT_SIGNING_ALG: 'rsa-sha256', AUDIT_SIGNING_PRIVATE_KEY: Ed25519PrivateKey.generate().toPem() }, 'AUDIT_SIGNER_CONFIG_INVALID'],
    ['a key URL over plain HTTP', { AUDIT_SIGNING_KEY_SOURCE: 'url', AUDIT_SIGNING_KEY_URL: 'http://127.0.0.1:9/audit.key', AUDIT_SIGNING_KEY_URL_SHA256: 'a'.repeat(64) }, 'KEY_URL_INSECURE'],
    ['an unpinned key URL', { AUDIT_SIGNING_KEY_SOURCE: 'url', AUDIT_SIGNING_KEY_URL: 'https://127.0.0.1:9/audit.key' }, 'KEY_URL_INSECURE'],
  ])('refuses to start with %s', async (_what, extra, code) => {
    const dir = join(root, `bad-${code}-${Math.random().toString(36).slice(2, 8)}`);
    await initManagerDir(dir, releaseKey, baseEnv);
    const output = await refusedStart(dir, { ...baseEnv, ...extra });
    expect(output).toContain(code);
    expect(output).not.toContain('PRIVATE KEY');
  });
});

describe('REQUIRE_KMS=true (real manager processes, drover release sign)', () => {
  let peer: KmsPeer;
  let kmsEnv: NodeJS.ProcessEnv;

  beforeAll(async () => {
    peer = await startKmsPeer();
    peer.addKey('ECC_NIST_EDWARDS25519', { alias: 'alias/manager-nonce' });
    peer.addKey('RSA_2048', { alias: 'alias/audit-rsa' });
    peer.addKey('HMAC_256', { alias: 'alias/audit-hmac' });
    kmsEnv = { ...baseEnv, AWS_CONFIG_FILE: join(root, 'no-aws-config'), AWS_SHARED_CREDENTIALS_FILE: join(root, 'no-aws-credentials'), AWS_EC2_METADATA_DISABLED: 'true', ...peer.env };
  });
  afterAll(async () => {
    await peer.close();
  });

  it.each([
    ['file keys from manager init', {}],
    ['an audit key from the environment', { AUDIT_SIGNING_KEY_SOURCE: 'env', AUDIT_SIGNING_PRIVATE_KEY: Ed25519PrivateKey.generate().toPem() }],
    ['DEV_ALLOW_EPHEMERAL=true beside it', { DEV_ALLOW_EPHEMERAL: 'true' }],
  ])('refuses to start a manager with %s (KMS_REQUIRED)', async (_what, extra) => {
    const dir = join(root, `require-${Math.random().toString(36).slice(2, 8)}`);
    await initManagerDir(dir, releaseKey, baseEnv);
    const output = await refusedStart(dir, { ...baseEnv, REQUIRE_KMS: 'true', ...extra });
    expect(output).toContain('KMS_REQUIRED');
  });

  it('starts a manager whose nonce key and rsa-sha256 audit key are in KMS, and its log verifies', async () => {
    const dir = join(root, 'kms-manager');
    const trust = join(root, 'kms.trust.json');
    expectOk(await drover(['trust', 'create', '--pub', await writePub(), '--out', trust], { env: kmsEnv }), 'trust create');
    expectOk(await drover(['manager', 'init', '--dir', dir, '--trust', trust, '--signing-key', 'awskms:alias/manager-nonce', '--audit-key', 'awskms:alias/manager-nonce', '--json'], { env: kmsEnv }), 'manager init');
    const env = { ...kmsEnv, REQUIRE_KMS: 'true', AUDIT_SIGNING_KEY_SOURCE: 'kms', AUDIT_SIGNING_KMS_KEY_ID: 'alias/audit-rsa', AUDIT_SIGNING_ALG: 'rsa-sha256', AUDIT_SIGNER_KID: 'kms-audit-rsa' };
    await runOnce(dir, env);
    const last = (await records(dir)).at(-1);
    expect([last?.alg, last?.kid]).toEqual(['rsa-sha256', 'kms-audit-rsa']);
    expect(peer.calls.some((call) => call.operation === 'Sign' && call.keyId === 'alias/audit-rsa')).toBe(true);
    const verified = await drover(['audit', 'verify', '--dir', dir], { env: kmsEnv });
    expect(verified.stdout.split('\n')[0], verified.stderr).toMatch(/^VERIFIED \d+ records$/);
  }, 60_000);

  it('verifies the records of a KMS HMAC audit key through KMS VerifyMac (audit verify --hmac-kms); a changed MAC is BROKEN, a signing key or a bad kid is refused', async () => {
    const dir = join(root, 'kms-hmac-manager');
    await initManagerDir(dir, releaseKey, baseEnv);
    await runOnce(dir, { ...kmsEnv, AUDIT_SIGNING_KEY_SOURCE: 'kms', AUDIT_SIGNING_KMS_KEY_ID: 'alias/audit-hmac', AUDIT_SIGNING_ALG: 'hmac-sha256' });
    const last = (await records(dir)).at(-1);
    expect(last?.alg).toBe('hmac-sha256');
    const kid = last?.kid ?? '';

    const missing = await drover(['audit', 'verify', '--dir', dir, '--json'], { env: kmsEnv });
    expect(JSON.parse(missing.stdout)).toMatchObject({ ok: false, reason: 'MAC_KEY_MISSING' });
    const before = peer.calls.filter((call) => call.operation === 'VerifyMac').length;
    const verified = await drover(['audit', 'verify', '--dir', dir, '--hmac-kms', 'awskms:alias/audit-hmac'], { env: kmsEnv });
    expect(verified.stdout.split('\n')[0], verified.stderr).toMatch(/^VERIFIED \d+ records$/);
    expect(verified.stderr).toContain('one VerifyMac call per record');
    const hmacRecords = (await records(dir)).filter((record) => record.kid === kid).length;
    expect(peer.calls.filter((call) => call.operation === 'VerifyMac').length - before).toBe(hmacRecords);
    // The kid given explicitly, as for a manager with AUDIT_SIGNER_KID, and in JSON.
    const named = await drover(['audit', 'verify', '--dir', dir, '--hmac-kms', `${kid}=awskms:alias/audit-hmac`, '--json'], { env: kmsEnv });
    expect(JSON.parse(named.stdout)).toMatchObject({ ok: true, kmsMacsChecked: hmacRecords });

    // The last record's MAC changed (its hash untouched): KMS says it is wrong.
    const text = await readFile(join(dir, 'audit/audit.jsonl'), 'utf8');
    const sig = Buffer.from(last?.sig ?? '', 'base64');
    sig[0] = (sig[0] ?? 0) ^ 1;
    const copy = join(root, 'kms-hmac-tampered.jsonl');
    await writeFile(copy, text.replace(last?.sig ?? '', sig.toString('base64')));
    const broken = await drover(['audit', 'verify', '--signers', join(dir, 'audit/signers.json'), '--hmac-kms', 'awskms:alias/audit-hmac', copy], { env: kmsEnv });
    expect(broken.code).toBe(1);
    expect(broken.stdout).toMatch(new RegExp(`^BROKEN at seq ${String(last?.seq)}: SIGNATURE_INVALID`));

    const signing = await drover(['audit', 'verify', '--dir', dir, '--hmac-kms', 'awskms:alias/audit-rsa', '--json'], { env: kmsEnv });
    expect((JSON.parse(signing.stdout) as { error: { code: string } }).error.code).toBe('KMS_KEY_SPEC_UNSUPPORTED');
    expect(signing.code, 'no verdict: exit 3, not BROKEN').toBe(3);
    const badKid = await drover(['audit', 'verify', '--dir', dir, '--hmac-kms', 'a kid=awskms:alias/audit-hmac', '--json'], { env: kmsEnv });
    expect((JSON.parse(badKid.stdout) as { error: { code: string } }).error.code).toBe('USAGE_ERROR');
    expect(signing.stdout + signing.stderr + badKid.stdout + badKid.stderr).not.toContain(String(kmsEnv['AWS_SECRET_ACCESS_KEY']));
    // A key policy that denies the verifier: the advice names what verifying needs, not signing's permissions.
    peer.deny.add(peer.addKey('HMAC_256', { alias: 'alias/audit-hmac-denied' }).keyId);
    const denied = await drover(['audit', 'verify', '--dir', dir, '--hmac-kms', 'awskms:alias/audit-hmac-denied', '--json'], { env: kmsEnv });
    const error = (JSON.parse(denied.stdout) as { error: { code: string; message: string } }).error;
    expect(error.code).toBe('KMS_ACCESS_DENIED');
    expect(denied.code).toBe(3);
    expect(error.message).toContain('kms:DescribeKey');
    expect(error.message).not.toContain('kms:Sign');
  }, 120_000);

  it('refuses `drover release sign` with a key file (KMS_REQUIRED) and writes nothing', async () => {
    await writeFile(join(root, 'release.key'), releaseKey.toPem(), { mode: 0o600 });
    await writeFile(join(root, 'agent.tgz'), randomBytes(1000));
    const result = await drover(['release', 'sign', '--key', join(root, 'release.key'), '--artifact', 'agent', '--version', '1.0.0', '--platform', 'linux-x64', '--out', join(root, 'agent.release.json'), '--json', join(root, 'agent.tgz')], {
      env: { ...baseEnv, REQUIRE_KMS: 'true' },
    });
    expect(result.code).toBe(1);
    expect((JSON.parse(result.stdout) as { error: { code: string } }).error.code).toBe('KMS_REQUIRED');
    expect(existsSync(join(root, 'agent.release.json'))).toBe(false);
  });

  async function writePub(): Promise<string> {
    const path = join(root, 'release.pub');
    await writeFile(path, releaseKey.publicKey.toPem());
    return path;
  }
});
