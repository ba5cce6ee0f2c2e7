// rsa-sha256 audit records signed in a real SoftHSM2 token (CKM_SHA256_RSA_PKCS, an RSA-2048 key
// generated in the token by the test): the chain verifies with signers.json made from the token's
// public object, and openssl verifies a record's signature from that public key's PEM. hmac-sha256
// records MACed in the token (CKM_SHA256_HMAC) verify through the token itself. Skips (and says
// why) without SoftHSM2, unless DROVER_REQUIRE_SOFTHSM=1.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generatePkcs11RsaKey, ManagerError, openPkcs11AuditMacKey, openPkcs11AuditSigner } from '@drover/manager';
import { Ed25519PrivateKey, parseAuditSigners, verifyAuditLog } from '@drover/protocol';
import type { AuditRecord } from '@drover/protocol';
import { AuditChain, buildAuditSigners } from '@drover/protocol/internal';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drover, expectOk } from '../helpers/cli.js';
import { initManagerDir, ManagerProcess } from '../helpers/manager-process.js';
import { expectError } from '../helpers/expect-error.js';
import { createSoftHsm, skipWithoutSoftHsm } from '../helpers/softhsm.js';
import type { SoftHsm, SoftHsmToken } from '../helpers/softhsm.js';

describe.skipIf(skipWithoutSoftHsm('the SoftHSM2 rsa-sha256 audit suite'))('rsa-sha256 audit records from a SoftHSM2 token', () => {
  let hsm: SoftHsm;
  let token: SoftHsmToken;
  let env: NodeJS.ProcessEnv | undefined;

  beforeAll(async () => {
    hsm = await createSoftHsm();
    // The module reads SOFTHSM2_CONF when this process first loads it.
    process.env['SOFTHSM2_CONF'] = hsm.env['SOFTHSM2_CONF'];
    env = hsm.env;
    token = await hsm.initToken('audit');
    generatePkcs11RsaKey(hsm.uri(token, 'audit-rsa'), { env });
    generatePkcs11RsaKey(hsm.uri(token, 'audit-rsa-2'), { env });
  });

  afterAll(async () => {
    if (env !== undefined) await hsm.cleanup();
  });

  it('signs records with CKM_SHA256_RSA_PKCS; the chain verifies with the public key read from the token, and openssl verifies a signature', async () => {
    const audit = openPkcs11AuditSigner(hsm.uri(token, 'audit-rsa'), { env, algorithm: 'rsa-sha256' });
    const rotated = openPkcs11AuditSigner(hsm.uri(token, 'audit-rsa-2'), { env, kid: 'audit-rsa-2' });
    try {
      expect(audit.publicKey).toMatchObject({ algorithm: 'rsa-sha256', bits: 2048 });
      const lines: string[] = [];
      for (const { signer } of [audit, rotated]) {
        const chain = AuditChain.resume(lines[lines.length - 1], signer);
        for (let i = 0; i < 3; i += 1) lines.push((await chain.append({ event: 'agent.enrolled', actor: 'operator:alice', outcome: 'success', details: { i } })).line);
      }
      const signers = buildAuditSigners([audit, rotated].map(({ signer, publicKey }) => ({ kid: signer.kid, publicKey })));
      expect(verifyAuditLog(lines.join(''), parseAuditSigners(JSON.stringify(signers)))).toMatchObject({ ok: true, count: 6 });

      const record = JSON.parse(lines[0] ?? '') as AuditRecord;
      expect(record.alg).toBe('rsa-sha256');
      const entry = signers.signers[0];
      if (entry?.algorithm !== 'rsa-sha256') throw new Error('signers.json lost the rsa-sha256 entry');
      await writeFile(join(hsm.dir, 'audit.pem'), `-----BEGIN PUBLIC KEY-----\n${entry.publicKey.replace(/.{64}/g, '$&\n').replace(/\n$/, '')}\n-----END PUBLIC KEY-----\n`);
      await writeFile(join(hsm.dir, 'hash.bin'), Buffer.from(record.hash, 'hex'));
      await writeFile(join(hsm.dir, 'sig.bin'), Buffer.from(record.sig, 'base64'));
      const openssl = spawnSync('openssl', ['dgst', '-sha256', '-verify', 'audit.pem', '-signature', 'sig.bin', 'hash.bin'], { cwd: hsm.dir, encoding: 'utf8' });
      // openssl is installed wherever softhsm2 is (.ci/run installs both).
      expect(openssl.error).toBeUndefined();
      expect(openssl.stdout.trim()).toBe('Verified OK');
      expect(openssl.status).toBe(0);
    } finally {
      audit.close();
      rotated.close();
    }
  });

  it('refuses an RSA key where ed25519 is configured (PKCS11_KEY_UNSUPPORTED), and a missing object (PKCS11_OBJECT_NOT_FOUND)', () => {
    expectError(() => openPkcs11AuditSigner(hsm.uri(token, 'audit-rsa'), { env, algorithm: 'ed25519' }), ManagerError, 'PKCS11_KEY_UNSUPPORTED');
    expectError(() => openPkcs11AuditSigner(hsm.uri(token, 'no-such-key'), { env }), ManagerError, 'PKCS11_OBJECT_NOT_FOUND');
  });

  it('`drover keygen --pkcs11 URI --algorithm rsa-sha256` makes the key in the token and writes only its public key: the signer opened from the URI has that key and kid; a second keygen over the label is refused and writes nothing', async () => {
    const out = join(hsm.dir, 'keygen-rsa');
    const uri = hsm.uri(token, 'audit-rsa-cli');
    const cliEnv = { PATH: process.env['PATH'], HOME: hsm.dir, ...hsm.env };
    const made = JSON.parse(expectOk(await drover(['keygen', '--pkcs11', uri, '--algorithm', 'rsa-sha256', '--out', out, '--name', 'audit', '--json'], { env: cliEnv }), 'keygen --pkcs11 rsa').stdout) as { kid: string; bits: number; publicKey: string; files: Record<string, string> };
    expect(made.bits).toBe(2048);
    expect(Object.keys(made.files)).toEqual(['publicKey']);
    expect([existsSync(join(out, 'audit.key')), existsSync(join(out, 'audit.minisign.pub'))]).toEqual([false, false]);
    const opened = openPkcs11AuditSigner(uri, { env, algorithm: 'rsa-sha256' });
    try {
      expect(opened.signer.kid).toBe(made.kid);
      if (opened.publicKey.algorithm !== 'rsa-sha256') throw new Error('not an rsa-sha256 key');
      expect(Buffer.from(opened.publicKey.spki).toString('base64')).toBe(made.publicKey);
      expect(await readFile(join(out, 'audit.pub'), 'utf8')).toContain(made.publicKey.slice(0, 64));
    } finally {
      opened.close();
    }
    const again = await drover(['keygen', '--pkcs11', uri, '--algorithm', 'rsa-sha256', '--out', out, '--name', 'again'], { env: cliEnv });
    expect([again.code, again.stderr]).toEqual([1, expect.stringContaining('PKCS11_OBJECT_EXISTS') as unknown]);
    expect(existsSync(join(out, 'again.pub'))).toBe(false);
  });

  it('hmac-sha256 in the token: keygen makes a secret key and writes nothing; its records verify through the token (audit verify --hmac-pkcs11), a changed MAC is BROKEN, other keys are refused', async () => {
    const cliEnv = { PATH: process.env['PATH'], HOME: hsm.dir, ...hsm.env };
    const uri = hsm.uri(token, 'audit-hmac');
    const made = JSON.parse(expectOk(await drover(['keygen', '--pkcs11', uri, '--algorithm', 'hmac-sha256', '--json'], { env: cliEnv }), 'keygen --pkcs11 hmac').stdout) as { kid: string; files: Record<string, string> };
    expect(made.files).toEqual({});
    const opened = openPkcs11AuditSigner(uri, { env, algorithm: 'hmac-sha256' });
    const lines: string[] = [];
    try {
      expect([opened.signer.kid, opened.signer.algorithm, opened.publicKey]).toEqual([made.kid, 'hmac-sha256', { algorithm: 'hmac-sha256' }]);
      const chain = new AuditChain(opened.signer);
      for (let i = 0; i < 3; i += 1) lines.push((await chain.append({ event: 'agent.checkin', actor: 'system', outcome: 'success', details: { i } })).line);
    } finally {
      opened.close();
    }
    const log = join(hsm.dir, 'hmac-audit.jsonl');
    const signers = join(hsm.dir, 'hmac-signers.json');
    await writeFile(log, lines.join(''));
    await writeFile(signers, JSON.stringify(buildAuditSigners([{ kid: made.kid, publicKey: { algorithm: 'hmac-sha256' } }])));
    expect(await readFile(signers, 'utf8')).not.toContain('key"');

    const missing = await drover(['audit', 'verify', '--signers', signers, '--json', log], { env: cliEnv });
    expect(JSON.parse(missing.stdout)).toMatchObject({ ok: false, reason: 'MAC_KEY_MISSING', seq: 1 });
    const verified = await drover(['audit', 'verify', '--signers', signers, '--hmac-pkcs11', uri, '--json', log], { env: cliEnv });
    expect(JSON.parse(verified.stdout), verified.stderr).toMatchObject({ ok: true, count: 3, tokenMacsChecked: 3 });
    const second = JSON.parse(lines[1] ?? '') as AuditRecord;
    const mac = Buffer.from(second.sig, 'base64');
    mac[0] = (mac[0] ?? 0) ^ 1;
    await writeFile(log, [lines[0], lines[1]?.replace(second.sig, mac.toString('base64')), lines[2]].join(''));
    const broken = await drover(['audit', 'verify', '--signers', signers, '--hmac-pkcs11', `${made.kid}=${uri}`, log], { env: cliEnv });
    expect([broken.code, broken.stdout.split('\n')[0]]).toEqual([1, expect.stringMatching(/^BROKEN at seq 2: SIGNATURE_INVALID/) as unknown]);

    // A kid may hold ":" (AUDIT_SIGNER_KID is free text): taken as a kid, not as a malformed key name.
    const colonKid = await drover(['audit', 'verify', '--signers', signers, '--hmac-pkcs11', `audit:2026=${uri}`, '--json', log], { env: cliEnv });
    expect(JSON.parse(colonKid.stdout)).toMatchObject({ ok: false, reason: 'MAC_KEY_MISSING' });
    const twice = await drover(['audit', 'verify', '--signers', signers, '--hmac-pkcs11', uri, '--hmac-pkcs11', uri, '--json', log], { env: cliEnv });
    expect((JSON.parse(twice.stdout) as { error: { code: string } }).error.code).toBe('USAGE_ERROR');
    expectError(() => openPkcs11AuditSigner(uri, { env, algorithm: 'rsa-sha256' }), ManagerError, 'PKCS11_KEY_UNSUPPORTED');
    expectError(() => openPkcs11AuditMacKey(`${uri.split('?')[0] ?? ''};type=private?${uri.split('?')[1] ?? ''}`, { env }), ManagerError, 'PKCS11_URI_INVALID');
    expectError(() => openPkcs11AuditMacKey(hsm.uri(token, 'audit-rsa'), { env }), ManagerError, 'PKCS11_OBJECT_NOT_FOUND');
    const again = await drover(['keygen', '--pkcs11', uri, '--algorithm', 'hmac-sha256'], { env: cliEnv });
    expect([again.code, again.stderr]).toEqual([1, expect.stringContaining('PKCS11_OBJECT_EXISTS') as unknown]);
    const noToken = await drover(['keygen', '--algorithm', 'hmac-sha256', '--out', join(hsm.dir, 'no-token')], { env: cliEnv });
    expect([noToken.code, noToken.stderr]).toEqual([2, expect.stringContaining('openssl rand -base64 32') as unknown]);
    expect(existsSync(join(hsm.dir, 'no-token'))).toBe(false);
  });

  it('a manager whose audit key is an HMAC key in the token (AUDIT_SIGNING_KEY_SOURCE=pkcs11): its log verifies through the token (audit verify --dir --hmac-pkcs11)', async () => {
    const cliEnv = { PATH: process.env['PATH'], HOME: hsm.dir, ...hsm.env };
    const uri = hsm.uri(token, 'manager-audit-hmac');
    const { kid } = JSON.parse(expectOk(await drover(['keygen', '--pkcs11', uri, '--algorithm', 'hmac-sha256', '--json'], { env: cliEnv }), 'keygen --pkcs11 hmac').stdout) as { kid: string };
    const dir = join(hsm.dir, 'hmac-manager');
    await initManagerDir(dir, Ed25519PrivateKey.generate(), cliEnv);
    const manager = await ManagerProcess.start(dir, { ...cliEnv, AUDIT_SIGNING_KEY_SOURCE: 'pkcs11', AUDIT_SIGNING_PKCS11_URI: uri, AUDIT_SIGNING_ALG: 'hmac-sha256' });
    expect(await manager.stop()).toBe(0);
    const last = JSON.parse((await readFile(join(dir, 'audit/audit.jsonl'), 'utf8')).trim().split('\n').at(-1) ?? '') as AuditRecord;
    expect([last.alg, last.kid]).toEqual(['hmac-sha256', kid]);
    const verified = await drover(['audit', 'verify', '--dir', dir, '--hmac-pkcs11', uri], { env: cliEnv });
    expect(verified.stdout.split('\n')[0], verified.stderr).toMatch(/^VERIFIED \d+ records$/);
  }, 60_000);

  it('an RSA key in the token signs audit records only (decision 0051): `drover release sign` and `manager init --signing-key` refuse it with PKCS11_KEY_UNSUPPORTED and write nothing', async () => {
    const cliEnv = { PATH: process.env['PATH'], HOME: hsm.dir, ...hsm.env };
    const artifact = join(hsm.dir, 'agent.tgz');
    await writeFile(artifact, 'agent bytes');
    const envelope = join(hsm.dir, 'agent.release.json');
    const signed = await drover(['release', 'sign', '--key', hsm.uri(token, 'audit-rsa'), '--artifact', 'agent', '--version', '1.0.0', '--platform', 'linux-x64', '--out', envelope, artifact], { env: cliEnv });
    expect(signed.code, signed.stdout).toBe(1);
    expect(signed.stderr).toContain('PKCS11_KEY_UNSUPPORTED');
    expect(signed.stderr).toContain('audit');
    expect(existsSync(envelope)).toBe(false);
    const dir = join(hsm.dir, 'rsa-nonce-manager');
    const init = await drover(['manager', 'init', '--dir', dir, '--signing-key', hsm.uri(token, 'audit-rsa')], { env: cliEnv });
    expect([init.code, init.stderr]).toEqual([1, expect.stringContaining('PKCS11_KEY_UNSUPPORTED') as unknown]);
    expect(existsSync(join(dir, 'manager.json'))).toBe(false);
  });
});
