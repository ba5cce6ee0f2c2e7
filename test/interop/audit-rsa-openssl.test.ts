// An rsa-sha256 audit record's signature is plain RSASSA-PKCS1-v1_5 with SHA-256 over the 32 bytes
// of the record's hash: `openssl dgst -sha256 -verify` checks it with the public key from
// signers.json, exported as PEM. CI installs openssl; where it is missing this says why and skips.
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rsaAuditSigner } from '@drover/protocol';
import type { AuditRecord } from '@drover/protocol';
import { AuditChain, buildAuditSigners } from '@drover/protocol/internal';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drover, expectOk } from '../helpers/cli.js';
import { skipWhenMissing } from '../helpers/interop.js';

const version = ((): string | undefined => {
  const result = spawnSync('openssl', ['version'], { encoding: 'utf8' });
  return result.error === undefined && result.status === 0 ? result.stdout.trim() : undefined;
})();
if (version === undefined) console.warn('Skipping the audit rsa-sha256 openssl interop: the `openssl` binary is not on PATH (apt-get install openssl).');

function openssl(args: string[], cwd: string): { status: number | null; stdout: string } {
  const result = spawnSync('openssl', args, { cwd, encoding: 'utf8', timeout: 20_000 });
  if (result.error !== undefined) throw result.error;
  return { status: result.status, stdout: result.stdout };
}

describe.skipIf(skipWhenMissing(version === undefined))(`audit rsa-sha256 records and openssl (${version ?? 'openssl missing'})`, () => {
  let dir = '';
  let record: AuditRecord;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'drover-audit-openssl-'));
    const rsa = rsaAuditSigner(generateKeyPairSync('rsa', { modulusLength: 3072 }).privateKey, 'audit-rsa');
    record = (await new AuditChain(rsa.signer).append({ event: 'agent.enrolled', actor: 'operator:alice', outcome: 'success', details: {} })).record;
    // The PEM a verifier exports from signers.json: the base64 DER of the SubjectPublicKeyInfo, wrapped.
    const entry = buildAuditSigners([{ kid: 'audit-rsa', publicKey: rsa.key }]).signers[0];
    if (entry?.algorithm !== 'rsa-sha256') throw new Error('signers.json lost the rsa-sha256 entry');
    const pem = `-----BEGIN PUBLIC KEY-----\n${entry.publicKey.replace(/.{64}/g, '$&\n').replace(/\n$/, '')}\n-----END PUBLIC KEY-----\n`;
    await writeFile(join(dir, 'audit-rsa.pem'), pem);
    await writeFile(join(dir, 'hash.bin'), Buffer.from(record.hash, 'hex'));
    await writeFile(join(dir, 'sig.bin'), Buffer.from(record.sig, 'base64'));
    const other = Buffer.from(record.hash, 'hex');
    other[0] = (other[0] ?? 0) ^ 1;
    await writeFile(join(dir, 'other-hash.bin'), other);
  });

  afterAll(async () => {
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  });

  it('openssl dgst -sha256 -verify accepts the signature over the 32 hash bytes with the exported PEM', () => {
    expect(record.alg).toBe('rsa-sha256');
    const result = openssl(['dgst', '-sha256', '-verify', 'audit-rsa.pem', '-signature', 'sig.bin', 'hash.bin'], dir);
    expect(result.stdout.trim()).toBe('Verified OK');
    expect(result.status).toBe(0);
  });

  it('openssl refuses the same signature over another hash', () => {
    const result = openssl(['dgst', '-sha256', '-verify', 'audit-rsa.pem', '-signature', 'sig.bin', 'other-hash.bin'], dir);
    expect(result.status).not.toBe(0);
    expect(result.stdout).toContain('Verification failure');
  });

  it('`drover keygen --algorithm rsa-sha256` writes a PKCS#8 key (0600) and its SPKI PEM: a record it signs verifies with openssl from NAME.pub, under the kid keygen printed', async () => {
    const data = JSON.parse(expectOk(await drover(['keygen', '--algorithm', 'rsa-sha256', '--bits', '3072', '--out', dir, '--name', 'audit', '--json']), 'keygen rsa').stdout) as { kid: string; bits: number; algorithm: string };
    expect([data.algorithm, data.bits]).toEqual(['rsa-sha256', 3072]);
    expect((await stat(join(dir, 'audit.key'))).mode & 0o777).toBe(0o600);
    // An RSA key is for the audit log only: no minisign file.
    expect(existsSync(join(dir, 'audit.minisign.pub'))).toBe(false);
    expect(openssl(['pkey', '-in', 'audit.key', '-noout', '-check'], dir).status).toBe(0);
    const rsa = rsaAuditSigner(await readFile(join(dir, 'audit.key'), 'utf8'));
    expect(rsa.signer.kid).toBe(data.kid);
    const signed = (await new AuditChain(rsa.signer).append({ event: 'agent.enrolled', actor: 'operator:alice', outcome: 'success', details: {} })).record;
    await writeFile(join(dir, 'keygen-hash.bin'), Buffer.from(signed.hash, 'hex'));
    await writeFile(join(dir, 'keygen-sig.bin'), Buffer.from(signed.sig, 'base64'));
    const result = openssl(['dgst', '-sha256', '-verify', 'audit.pub', '-signature', 'keygen-sig.bin', 'keygen-hash.bin'], dir);
    expect([result.status, result.stdout.trim()]).toEqual([0, 'Verified OK']);
    // Not over itself without --force, and what the usage forbids writes nothing.
    expect((await drover(['keygen', '--algorithm', 'rsa-sha256', '--out', dir, '--name', 'audit'])).stderr).toContain('FILE_EXISTS');
    for (const args of [['--bits', '3072'], ['--algorithm', 'rsa-sha256', '--bits', '1024'], ['--algorithm', 'p256'], ['--algorithm', 'rsa-sha256', '--awskms', 'awskms:alias/x', '--bits', '4096']]) {
      const refused = await drover(['keygen', ...args, '--out', dir, '--name', 'refused']);
      expect([refused.code, refused.stderr], args.join(' ')).toEqual([2, expect.stringContaining('USAGE_ERROR') as unknown]);
    }
    expect(existsSync(join(dir, 'refused.key')) || existsSync(join(dir, 'refused.pub'))).toBe(false);
  });
});
