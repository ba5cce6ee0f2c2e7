// Interop of drover's Ed25519 keys and signatures with the real `openssl` (PKCS#8 / SPKI PEM,
// pure Ed25519 over the whole file with `pkeyutl -rawin`). CI installs openssl; where it is
// missing these tests say why and skip.
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ed25519PrivateKey, Ed25519PublicKey } from '@drover/protocol';
import { nativeEd25519, tweetnaclEd25519 } from '@drover/protocol/internal';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { skipWhenMissing } from '../helpers/interop.js';

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function openssl(args: string[], cwd: string): Run {
  const result = spawnSync('openssl', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 20_000 });
  if (result.error !== undefined) throw result.error;
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function opensslVersion(): string | undefined {
  const result = spawnSync('openssl', ['version'], { encoding: 'utf8' });
  return result.error === undefined && result.status === 0 ? result.stdout.trim() : undefined;
}

const version = opensslVersion();
if (version === undefined) console.warn('Skipping the openssl interop tests: the `openssl` binary is not on PATH (apt-get install openssl).');

function flipByte(bytes: Uint8Array, index: number): Uint8Array {
  const copy = new Uint8Array(bytes);
  copy[index] = (copy[index] ?? 0) ^ 0x01;
  return copy;
}

describe.skipIf(skipWhenMissing(version === undefined))(`openssl interop (${version ?? 'openssl missing'})`, () => {
  let dir = '';
  const file = new Uint8Array(Array.from({ length: 100_000 }, (_, i) => (i * 17 + 3) & 0xff));

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'drover-openssl-'));
    await writeFile(join(dir, 'artifact.bin'), file);
    await writeFile(join(dir, 'artifact-flipped.bin'), flipByte(file, 50_000));
  });

  afterAll(async () => {
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  });

  describe('openssl signs, drover verifies', () => {
    let pubPem = '';
    let signature = new Uint8Array();

    beforeAll(async () => {
      expect(openssl(['genpkey', '-algorithm', 'ed25519', '-out', 'key.pem'], dir).status).toBe(0);
      expect(openssl(['pkey', '-in', 'key.pem', '-pubout', '-out', 'pub.pem'], dir).status).toBe(0);
      const signed = openssl(['pkeyutl', '-sign', '-rawin', '-inkey', 'key.pem', '-in', 'artifact.bin', '-out', 'artifact.sig'], dir);
      expect(signed.status, signed.stderr).toBe(0);
      pubPem = await readFile(join(dir, 'pub.pem'), 'utf8');
      signature = new Uint8Array(await readFile(join(dir, 'artifact.sig')));
    });

    it('verifies a whole-file signature with the SPKI PEM from openssl pkey -pubout', () => {
      expect(signature.length).toBe(64);
      const publicKey = Ed25519PublicKey.from(pubPem);
      expect(publicKey.verify(file, signature)).toBe(true);
      expect(publicKey.verify(file, signature, nativeEd25519)).toBe(true);
      expect(publicKey.verify(file, signature, tweetnaclEd25519)).toBe(true);
    });

    it('refuses the file with one byte flipped, and a flipped signature', () => {
      const publicKey = Ed25519PublicKey.from(pubPem);
      expect(publicKey.verify(flipByte(file, 50_000), signature)).toBe(false);
      expect(publicKey.verify(flipByte(file, 50_000), signature, tweetnaclEd25519)).toBe(false);
      expect(publicKey.verify(file, flipByte(signature, 10))).toBe(false);
    });

    it('reads the openssl PKCS#8 private key: same public key, same (deterministic) signature', async () => {
      const key = Ed25519PrivateKey.from(await readFile(join(dir, 'key.pem'), 'utf8'));
      expect(key.publicKey.equals(Ed25519PublicKey.from(pubPem))).toBe(true);
      expect(key.publicKey.toPem()).toBe(pubPem);
      expect(Buffer.from(key.sign(file)).equals(signature)).toBe(true);
    });
  });

  describe('drover signs, openssl verifies', () => {
    const key = Ed25519PrivateKey.generate();

    beforeAll(async () => {
      await writeFile(join(dir, 'drover.key'), key.toPem(), { mode: 0o600 });
      await writeFile(join(dir, 'drover.pub'), key.publicKey.toPem());
      await writeFile(join(dir, 'drover.sig'), key.sign(file));
    });

    it('openssl reads the drover private key and derives the same public key', () => {
      const derived = openssl(['pkey', '-in', 'drover.key', '-pubout'], dir);
      expect(derived.status, derived.stderr).toBe(0);
      expect(derived.stdout).toBe(key.publicKey.toPem());
    });

    it('openssl signs with the drover key: the signature drover would make, which drover verifies', async () => {
      const signed = openssl(['pkeyutl', '-sign', '-rawin', '-inkey', 'drover.key', '-in', 'artifact.bin', '-out', 'openssl.sig'], dir);
      expect(signed.status, signed.stderr).toBe(0);
      const signature = new Uint8Array(await readFile(join(dir, 'openssl.sig')));
      expect(Buffer.from(signature).equals(key.sign(file))).toBe(true);
      expect(key.publicKey.verify(file, signature)).toBe(true);
      expect(key.publicKey.verify(flipByte(file, 1), signature)).toBe(false);
    });

    it('openssl pkeyutl -verify accepts a drover signature and refuses a flipped file', () => {
      const verifyArgs = (input: string): string[] => ['pkeyutl', '-verify', '-rawin', '-pubin', '-inkey', 'drover.pub', '-sigfile', 'drover.sig', '-in', input];
      const accepted = openssl(verifyArgs('artifact.bin'), dir);
      expect(accepted.status, accepted.stderr).toBe(0);
      expect(accepted.stdout).toContain('Signature Verified Successfully');
      const refused = openssl(verifyArgs('artifact-flipped.bin'), dir);
      expect(refused.status).not.toBe(0);
      expect(`${refused.stdout}${refused.stderr}`).toContain('Signature Verification Failure');
    });
  });
});
