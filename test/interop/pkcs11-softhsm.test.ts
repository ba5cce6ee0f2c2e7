// Keys in an HSM, through the built drover CLI against a real SoftHSM2 (issue 14): `drover keygen
// --pkcs11` makes an Ed25519 key inside a throwaway token, `drover release sign --key pkcs11:...`
// signs with it (k-of-n with keys in two tokens), and what it signs verifies with `drover release
// verify`, `openssl pkeyutl` and `minisign -V`. A wrong PIN, a missing object, a missing or removed
// token each end with their code and no output file. CI installs softhsm2 and sets
// DROVER_REQUIRE_SOFTHSM=1; elsewhere, without SoftHSM2, this suite skips and says why.

import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Ed25519PublicKey, RELEASE_PAYLOAD_TYPE, parseEnvelope, pae } from '@drover/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drover, expectOk } from '../helpers/cli.js';
import type { RunResult } from '../helpers/cli.js';
import { errorCode, filesUnder, runExternalKeyManager, tool } from '../helpers/signing-services.js';
import { createSoftHsm, skipWithoutSoftHsm } from '../helpers/softhsm.js';
import type { SoftHsm, SoftHsmToken } from '../helpers/softhsm.js';

const ARTIFACT = Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 31 + 7) & 0xff));
const SIGN_ARGS = ['--artifact', 'agent', '--version', '1.4.0', '--platform', 'linux-x64'];

describe.skipIf(skipWithoutSoftHsm('the SoftHSM2 (PKCS#11) suite'))('keys in a SoftHSM2 token, through the drover CLI', () => {
  let hsm: SoftHsm;
  let dir = '';
  let tokenA: SoftHsmToken;
  let tokenB: SoftHsmToken;
  const cli = (args: string[], env: NodeJS.ProcessEnv = hsm.env): Promise<RunResult> => drover(args, { cwd: dir, env });

  beforeAll(async () => {
    hsm = await createSoftHsm();
    dir = hsm.dir;
    tokenA = await hsm.initToken('release-a');
    tokenB = await hsm.initToken('release-b', { pin: '97531' });
    await writeFile(join(dir, 'agent.tar.gz'), ARTIFACT);
    expectOk(await cli(['keygen', '--pkcs11', hsm.uri(tokenA, 'signer-a'), '--out', 'keys', '--name', 'a']), 'keygen in token A');
    expectOk(await cli(['keygen', '--pkcs11', hsm.uri(tokenB, 'signer-b'), '--out', 'keys', '--name', 'b']), 'keygen in token B');
  });

  afterAll(async () => {
    // dir is set once the SoftHSM2 exists.
    if (dir !== '') await hsm.cleanup();
  });

  it('keygen --pkcs11 writes only the public key files, and the key it reports is the one in them', async () => {
    expect(existsSync(join(dir, 'keys/a.pub'))).toBe(true);
    expect(existsSync(join(dir, 'keys/a.minisign.pub'))).toBe(true);
    // The private key never leaves the token: no key file.
    expect(existsSync(join(dir, 'keys/a.key'))).toBe(false);
    const made = JSON.parse(expectOk(await cli(['keygen', '--pkcs11', hsm.uri(tokenA, 'signer-c'), '--out', 'keys', '--name', 'c', '--json']), 'keygen c').stdout) as { keyid: string; pkcs11: string };
    const pub = Ed25519PublicKey.from(await readFile(join(dir, 'keys/c.pub'), 'utf8'));
    expect(made.keyid).toBe(pub.keyid);
    // Named by label and the CKA_ID the token gave it; neither the PIN file nor the module in the name.
    expect(made.pkcs11).toMatch(/^pkcs11:token=release-a;object=signer-c;id=(%[0-9a-f]{2}){16}$/);
  });

  it('signs a release with the token key; drover verifies it, and openssl verifies the same signature from the exported public key', async () => {
    const signed = expectOk(await cli(['release', 'sign', '--key', hsm.uri(tokenA, 'signer-a'), ...SIGN_ARGS, '--out', 'one.release.json', 'agent.tar.gz']), 'release sign');
    expect(signed.stdout).toContain('one.release.json');
    const verified = expectOk(await cli(['release', 'verify', '--pub', 'keys/a.pub', '--release', 'one.release.json', 'agent.tar.gz']), 'release verify');
    expect(verified.stdout).toMatch(/^VERIFIED agent 1\.4\.0 for linux-x64/);

    const envelope = parseEnvelope(await readFile(join(dir, 'one.release.json')));
    const [signature] = envelope.signatures;
    expect(signature?.keyid).toBe(Ed25519PublicKey.from(await readFile(join(dir, 'keys/a.pub'), 'utf8')).keyid);
    // The raw 64-byte RFC 8032 signature over PAE, as a local key makes it.
    const sig = Buffer.from(signature?.sig ?? '', 'base64');
    expect(sig).toHaveLength(64);
    await writeFile(join(dir, 'one.pae'), pae(RELEASE_PAYLOAD_TYPE, Buffer.from(envelope.payload, 'base64')));
    await writeFile(join(dir, 'one.sig'), sig);
    const openssl = tool('openssl', ['pkeyutl', '-verify', '-rawin', '-pubin', '-inkey', 'keys/a.pub', '-in', 'one.pae', '-sigfile', 'one.sig'], dir);
    expect(openssl.status, openssl.stderr).toBe(0);
    expect(openssl.stdout).toContain('Signature Verified Successfully');
    // And openssl refuses it for other bytes: the check above can fail.
    await writeFile(join(dir, 'other.pae'), Buffer.concat([pae(RELEASE_PAYLOAD_TYPE, Buffer.from(envelope.payload, 'base64')), Buffer.from(' ')]));
    expect(tool('openssl', ['pkeyutl', '-verify', '-rawin', '-pubin', '-inkey', 'keys/a.pub', '-in', 'other.pae', '-sigfile', 'one.sig'], dir).status).not.toBe(0);
  });

  it('k-of-n: keys in two different tokens (two PINs) meet a 2-of-2 policy; one of them alone does not', async () => {
    expectOk(await cli(['trust', 'create', '--pub', 'keys/a.pub', '--pub', 'keys/b.pub', '--threshold', '2', '--out', 'trust.json']), 'trust create');
    expectOk(await cli(['release', 'sign', '--key', hsm.uri(tokenA, 'signer-a'), '--key', hsm.uri(tokenB, 'signer-b'), ...SIGN_ARGS, '--out', 'two.release.json', 'agent.tar.gz']), 'sign with two tokens');
    const verified = JSON.parse(expectOk(await cli(['release', 'verify', '--trust', 'trust.json', '--release', 'two.release.json', '--json', 'agent.tar.gz']), 'verify 2-of-2').stdout) as { signers: string[] };
    const a = Ed25519PublicKey.from(await readFile(join(dir, 'keys/a.pub'), 'utf8'));
    const b = Ed25519PublicKey.from(await readFile(join(dir, 'keys/b.pub'), 'utf8'));
    expect(verified.signers.sort()).toEqual([a.keyid, b.keyid].sort());

    const refused = await cli(['release', 'verify', '--trust', 'trust.json', '--release', 'one.release.json', '--json', 'agent.tar.gz']);
    expect(errorCode(refused)).toBe('RELEASE_THRESHOLD_NOT_MET');
  });

  it('signs beside a key file, the PIN and module taken from DROVER_PKCS11_PIN and DROVER_PKCS11_MODULE', async () => {
    expectOk(await cli(['keygen', '--out', 'keys', '--name', 'file']), 'file keygen');
    const env = { ...hsm.env, DROVER_PKCS11_PIN: tokenB.pin, DROVER_PKCS11_MODULE: hsm.module };
    expectOk(await cli(['release', 'sign', '--key', 'keys/file.key', '--key', 'pkcs11:token=release-b;object=signer-b', ...SIGN_ARGS, '--out', 'mixed.release.json', 'agent.tar.gz'], env), 'mixed sign');
    const verified = expectOk(await cli(['release', 'verify', '--pub', 'keys/file.pub', '--pub', 'keys/b.pub', '--threshold', '2', '--release', 'mixed.release.json', 'agent.tar.gz']), 'verify mixed');
    expect(verified.stdout).toContain('VERIFIED');
  });

  it('minisign sign --key pkcs11:... writes a signature the real minisign accepts with the exported key', async (context) => {
    if (tool('minisign', ['-v'], dir).status !== 0) {
      if (process.env['DROVER_REQUIRE_INTEROP'] === '1') throw new Error('minisign is not on PATH');
      context.skip();
    }
    expectOk(await cli(['minisign', 'sign', '--key', hsm.uri(tokenA, 'signer-a'), '--trusted-comment', 'from the HSM', 'agent.tar.gz']), 'minisign sign');
    const accepted = tool('minisign', ['-V', '-H', '-m', 'agent.tar.gz', '-p', 'keys/a.minisign.pub'], dir);
    expect(accepted.status, accepted.stderr).toBe(0);
    expect(accepted.stdout).toContain('Trusted comment: from the HSM');
    // Another key's public file refuses it: the acceptance above is the token key's.
    expect(tool('minisign', ['-V', '-m', 'agent.tar.gz', '-p', 'keys/b.minisign.pub'], dir).status).not.toBe(0);
  });

  it('a manager whose nonce and audit keys are in the tokens: no private key on its disk; its nonces and audit records verify (drover, openssl)', async () => {
    const env = hsm.env;
    expectOk(await cli(['keygen', '--pkcs11', hsm.uri(tokenA, 'manager-nonce'), '--out', 'keys', '--name', 'nonce']), 'keygen nonce key');
    expectOk(await cli(['keygen', '--pkcs11', hsm.uri(tokenB, 'manager-audit'), '--out', 'keys', '--name', 'audit']), 'keygen audit key');
    expectOk(await cli(['trust', 'create', '--pub', 'keys/a.pub', '--out', 'trust-a.json']), 'trust create');
    const mgr = join(dir, 'mgr');
    const init = JSON.parse(
      expectOk(await cli(['manager', 'init', '--dir', mgr, '--trust', 'trust-a.json', '--signing-key', hsm.uri(tokenA, 'manager-nonce'), '--audit-key', hsm.uri(tokenB, 'manager-audit'), '--json']), 'manager init').stdout,
    ) as { enrollmentToken: string; managerKeyId: string; auditKeyId: string };
    const noncePub = Ed25519PublicKey.from(await readFile(join(dir, 'keys/nonce.pub'), 'utf8'));
    const auditPub = Ed25519PublicKey.from(await readFile(join(dir, 'keys/audit.pub'), 'utf8'));
    expect([init.managerKeyId, init.auditKeyId]).toEqual([noncePub.keyid, auditPub.keyid]);
    // No private key anywhere in the manager's directory; manager.json names the URIs.
    expect(existsSync(join(mgr, 'keys/manager.key'))).toBe(false);
    expect(existsSync(join(mgr, 'keys/audit.key'))).toBe(false);
    for (const file of await filesUnder(mgr)) expect(await readFile(file, 'latin1'), file).not.toContain('PRIVATE KEY');
    const config = JSON.parse(await readFile(join(mgr, 'manager.json'), 'utf8')) as { paths: Record<string, string> };
    expect([config.paths['managerKey'], config.paths['auditKey']]).toEqual([hsm.uri(tokenA, 'manager-nonce'), hsm.uri(tokenB, 'manager-audit')]);
    // The public half hosts pin is the token key's.
    expect(Ed25519PublicKey.from(await readFile(join(mgr, 'keys/manager.key.pub'), 'utf8')).keyid).toBe(noncePub.keyid);

    await runExternalKeyManager({ dir, mgr, env, enrollmentToken: init.enrollmentToken, noncePubPath: 'keys/nonce.pub', auditPubPath: 'keys/audit.pub', releaseKey: hsm.uri(tokenA, 'signer-a'), cli });
  });

  describe('each failure has its code, never shows the PIN, and writes nothing', () => {
    const refusedSign = async (key: string, out: string, env?: NodeJS.ProcessEnv): Promise<string> => {
      const result = await cli(['release', 'sign', '--key', hsm.uri(tokenA, 'signer-a'), '--key', key, ...SIGN_ARGS, '--out', out, '--json', 'agent.tar.gz'], env);
      expect(existsSync(join(dir, out)), 'no partial envelope').toBe(false);
      return errorCode(result);
    };

    it('a wrong PIN: PKCS11_PIN_INCORRECT, and the PIN is not in the output', async () => {
      const wrongPin = join(dir, 'wrong.pin');
      await writeFile(wrongPin, '8642097\n', { mode: 0o600 });
      const result = await cli(['release', 'sign', '--key', hsm.uri(tokenB, 'signer-b', { pinFile: wrongPin }), ...SIGN_ARGS, '--out', 'wrong-pin.release.json', 'agent.tar.gz']);
      expect(result.code).toBe(1);
      expect(result.stderr).toContain('PKCS11_PIN_INCORRECT');
      expect(result.stdout + result.stderr).not.toContain('8642097');
      expect(existsSync(join(dir, 'wrong-pin.release.json'))).toBe(false);
      // The right PIN still works: the token was not locked by one wrong try.
      expectOk(await cli(['release', 'sign', '--key', hsm.uri(tokenB, 'signer-b'), ...SIGN_ARGS, '--out', 'after-wrong.release.json', 'agent.tar.gz']), 'sign after a wrong PIN');
    });

    it('a missing object: PKCS11_OBJECT_NOT_FOUND', async () => {
      expect(await refusedSign(hsm.uri(tokenA, 'no-such-key'), 'missing-object.release.json')).toBe('PKCS11_OBJECT_NOT_FOUND');
    });

    it('a missing token: PKCS11_TOKEN_NOT_FOUND', async () => {
      expect(await refusedSign(hsm.uri({ ...tokenA, label: 'no-such-token' }, 'signer-a'), 'missing-token.release.json')).toBe('PKCS11_TOKEN_NOT_FOUND');
    });

    it('a removed token: PKCS11_TOKEN_NOT_FOUND for the key that was in it', async () => {
      const gone = await hsm.initToken('removed');
      expectOk(await cli(['keygen', '--pkcs11', hsm.uri(gone, 'k'), '--out', 'keys', '--name', 'removed']), 'keygen in the token to remove');
      hsm.deleteToken('removed');
      expect(await refusedSign(hsm.uri(gone, 'k'), 'removed.release.json')).toBe('PKCS11_TOKEN_NOT_FOUND');
    });

    it('no PIN at all: PKCS11_PIN_MISSING; a PIN in the URI: PKCS11_URI_INVALID, without echoing it', async () => {
      expect(await refusedSign(`pkcs11:token=release-a;object=signer-a?module-path=${hsm.module}`, 'no-pin.release.json')).toBe('PKCS11_PIN_MISSING');
      const result = await cli(['release', 'sign', '--key', `pkcs11:token=release-a;object=signer-a?pin-value=5566778&module-path=${hsm.module}`, ...SIGN_ARGS, '--out', 'pin-value.release.json', 'agent.tar.gz']);
      expect(result.stderr).toContain('PKCS11_URI_INVALID');
      expect(result.stdout + result.stderr).not.toContain('5566778');
      expect(existsSync(join(dir, 'pin-value.release.json'))).toBe(false);
    });

    it('no module, or one that does not exist: PKCS11_MODULE_NOT_FOUND', async () => {
      expect(await refusedSign(hsm.uri(tokenA, 'signer-a', { withModule: false }), 'no-module.release.json')).toBe('PKCS11_MODULE_NOT_FOUND');
      expect(await refusedSign(`pkcs11:token=release-a;object=signer-a?pin-source=file:${tokenA.pinFile}&module-path=/nonexistent/libnothing.so`, 'bad-module.release.json')).toBe('PKCS11_MODULE_NOT_FOUND');
    });

    it('manager init with a key it cannot open: its code, and no manager directory', async () => {
      const wrongPin = join(dir, 'wrong-init.pin');
      await writeFile(wrongPin, '1122334\n', { mode: 0o600 });
      const badPin = await cli(['manager', 'init', '--dir', join(dir, 'mgr-bad'), '--signing-key', hsm.uri(tokenA, 'signer-a', { pinFile: wrongPin }), '--json']);
      expect(errorCode(badPin)).toBe('PKCS11_PIN_INCORRECT');
      const noKey = await cli(['manager', 'init', '--dir', join(dir, 'mgr-bad'), '--audit-key', hsm.uri(tokenB, 'no-such-key'), '--json']);
      expect(errorCode(noKey)).toBe('PKCS11_OBJECT_NOT_FOUND');
      expect(existsSync(join(dir, 'mgr-bad'))).toBe(false);
    });

    it('keygen of a label the token already holds: PKCS11_OBJECT_EXISTS, and no public key files', async () => {
      const result = await cli(['keygen', '--pkcs11', hsm.uri(tokenA, 'signer-a'), '--out', 'keys', '--name', 'again', '--json']);
      expect(errorCode(result)).toBe('PKCS11_OBJECT_EXISTS');
      expect(existsSync(join(dir, 'keys/again.pub'))).toBe(false);
      expect(existsSync(join(dir, 'keys/again.minisign.pub'))).toBe(false);
    });
  });
});
