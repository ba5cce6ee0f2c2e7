// Interop with the real `minisign` binary, in both directions, through the built drover CLI.
// CI installs minisign; where it is missing these tests say why and skip.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { skipWhenMissing } from '../helpers/interop.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const cliBin = join(root, 'packages/cli/dist/bin.js');

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], cwd: string): Run {
  const result = spawnSync(command, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 20_000 });
  if (result.error !== undefined) throw result.error;
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function drover(args: string[], cwd: string): Run {
  return run(process.execPath, [cliBin, ...args], cwd);
}

function minisignVersion(): string | undefined {
  const result = spawnSync('minisign', ['-v'], { encoding: 'utf8' });
  return result.error === undefined && result.status === 0 ? result.stdout.trim() : undefined;
}

const version = minisignVersion();
const missing = version === undefined ? 'the `minisign` binary is not on PATH (apt-get install minisign)' : !existsSync(cliBin) ? `${cliBin} is not built (run npm run build)` : undefined;
if (missing !== undefined) console.warn(`Skipping the minisign interop tests: ${missing}.`);

function flipByte(bytes: Buffer, index: number): Buffer {
  const copy = Buffer.from(bytes);
  copy[index] = (copy[index] ?? 0) ^ 0x01;
  return copy;
}

/** The two algorithm bytes of a .minisig file: "ED" prehashed, "Ed" legacy. */
async function signatureAlgorithm(path: string): Promise<string> {
  const line = (await readFile(path, 'utf8')).split('\n')[1] ?? '';
  return Buffer.from(line, 'base64').subarray(0, 2).toString('latin1');
}

describe.skipIf(skipWhenMissing(missing !== undefined))(`minisign interop (${version ?? 'minisign missing'})`, () => {
  let dir = '';
  const content = Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 131 + 7) & 0xff));

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'drover-minisign-'));
  });

  afterAll(async () => {
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  });

  describe('minisign signs, drover verifies', () => {
    beforeAll(async () => {
      expect(run('minisign', ['-G', '-W', '-p', 'ms.pub', '-s', 'ms.sec'], dir).status).toBe(0);
      await writeFile(join(dir, 'ms-file.bin'), content);
    });

    it('accepts a prehashed signature made by minisign', () => {
      const signed = run('minisign', ['-S', '-m', 'ms-file.bin', '-s', 'ms.sec', '-t', 'made by minisign'], dir);
      expect(signed.status, signed.stderr).toBe(0);
      const verified = drover(['minisign', 'verify', '--pub', 'ms.pub', 'ms-file.bin'], dir);
      expect(verified.stderr).toBe('');
      expect(verified.status).toBe(0);
      expect(verified.stdout).toContain('Trusted comment: made by minisign');
      const json = drover(['minisign', 'verify', '--pub', 'ms.pub', '--sig', 'ms-file.bin.minisig', '--json', 'ms-file.bin'], dir);
      expect(json.status).toBe(0);
      expect(JSON.parse(json.stdout)).toMatchObject({ verified: true, prehashed: true, trustedComment: 'made by minisign' });
    });

    it('accepts a legacy signature made by minisign -l, and refuses it with --prehashed-only', () => {
      expect(run('minisign', ['-S', '-l', '-m', 'ms-file.bin', '-s', 'ms.sec', '-x', 'legacy.minisig', '-t', 'legacy'], dir).status).toBe(0);
      const verified = drover(['minisign', 'verify', '--pub', 'ms.pub', '--sig', 'legacy.minisig', 'ms-file.bin'], dir);
      expect(verified.status, verified.stderr).toBe(0);
      expect(verified.stdout).toContain('Trusted comment: legacy');
      const strict = drover(['minisign', 'verify', '--pub', 'ms.pub', '--sig', 'legacy.minisig', '--prehashed-only', 'ms-file.bin'], dir);
      expect(strict.status).toBe(1);
      expect(strict.stderr).toContain('MINISIGN_ALGORITHM_UNSUPPORTED');
    });

    it('refuses the file with one byte flipped, exit 1 and the error code', async () => {
      await writeFile(join(dir, 'ms-flipped.bin'), flipByte(content, 100_000));
      const refused = drover(['minisign', 'verify', '--pub', 'ms.pub', '--sig', 'ms-file.bin.minisig', 'ms-flipped.bin'], dir);
      expect(refused.status).toBe(1);
      expect(refused.stderr).toMatch(/^drover: MINISIGN_SIGNATURE_INVALID: /);
      expect(refused.stdout).not.toContain('verified');
      const json = drover(['minisign', 'verify', '--pub', 'ms.pub', '--sig', 'ms-file.bin.minisig', '--json', 'ms-flipped.bin'], dir);
      expect(json.status).toBe(1);
      expect(JSON.parse(json.stdout)).toMatchObject({ error: { code: 'MINISIGN_SIGNATURE_INVALID' } });
    });

    it('refuses a tampered trusted comment and a key that did not sign', async () => {
      const sig = await readFile(join(dir, 'ms-file.bin.minisig'), 'utf8');
      await writeFile(join(dir, 'tampered.minisig'), sig.replace('made by minisign', 'made by someone'));
      const tampered = drover(['minisign', 'verify', '--pub', 'ms.pub', '--sig', 'tampered.minisig', 'ms-file.bin'], dir);
      expect(tampered.status).toBe(1);
      expect(tampered.stderr).toContain('MINISIGN_TRUSTED_COMMENT_INVALID');

      expect(run('minisign', ['-G', '-W', '-p', 'other.pub', '-s', 'other.sec'], dir).status).toBe(0);
      const wrongKey = drover(['minisign', 'verify', '--pub', 'other.pub', 'ms-file.bin'], dir);
      expect(wrongKey.status).toBe(1);
      expect(wrongKey.stderr).toContain('MINISIGN_KEY_MISMATCH');
    });
  });

  describe('drover signs, minisign verifies', () => {
    beforeAll(async () => {
      const keygen = drover(['keygen', '--out', dir, '--name', 'release'], dir);
      expect(keygen.status, keygen.stderr).toBe(0);
      // `drover keygen` may already write release.minisign.pub; it must then be the same file.
      const exported = drover(['minisign', 'pubkey', '--pub', 'release.pub'], dir);
      expect(exported.status, exported.stderr).toBe(0);
      const path = join(dir, 'release.minisign.pub');
      if (existsSync(path)) expect(await readFile(path, 'utf8')).toBe(exported.stdout);
      else await writeFile(path, exported.stdout);
      expect(drover(['minisign', 'pubkey', '--key', 'release.key'], dir).stdout).toBe(exported.stdout);
      await writeFile(join(dir, 'artifact.tar.gz'), content);
    });

    it('writes a prehashed signature that minisign -V accepts, and minisign refuses a tampered file', async () => {
      const signed = drover(['minisign', 'sign', '--key', 'release.key', '--trusted-comment', 'drover release 1.2.3', 'artifact.tar.gz'], dir);
      expect(signed.status, signed.stderr).toBe(0);
      expect(signed.stdout).toContain('artifact.tar.gz.minisig');
      expect(await signatureAlgorithm(join(dir, 'artifact.tar.gz.minisig'))).toBe('ED');

      const accepted = run('minisign', ['-V', '-H', '-m', 'artifact.tar.gz', '-p', 'release.minisign.pub'], dir);
      expect(accepted.status, accepted.stderr).toBe(0);
      expect(accepted.stdout).toContain('Signature and comment signature verified');
      expect(accepted.stdout).toContain('Trusted comment: drover release 1.2.3');

      await writeFile(join(dir, 'artifact-tampered.tar.gz'), flipByte(content, 12_345));
      const refused = run('minisign', ['-V', '-m', 'artifact-tampered.tar.gz', '-x', 'artifact.tar.gz.minisig', '-p', 'release.minisign.pub'], dir);
      expect(refused.status).toBe(1);
      expect(refused.stderr).toContain('Signature verification failed');
    });

    it('writes a legacy signature that minisign -V accepts', async () => {
      await writeFile(join(dir, 'legacy.bin'), content);
      const signed = drover(['minisign', 'sign', '--key', 'release.key', '--legacy', 'legacy.bin'], dir);
      expect(signed.status, signed.stderr).toBe(0);
      expect(await signatureAlgorithm(join(dir, 'legacy.bin.minisig'))).toBe('Ed');

      const accepted = run('minisign', ['-V', '-m', 'legacy.bin', '-p', 'release.minisign.pub'], dir);
      expect(accepted.status, accepted.stderr).toBe(0);
      expect(accepted.stdout).toMatch(/Trusted comment: timestamp:\d+\tfile:legacy\.bin\n/);
      // minisign -H demands prehashed signatures: proof the file really is legacy.
      const strict = run('minisign', ['-V', '-H', '-m', 'legacy.bin', '-p', 'release.minisign.pub'], dir);
      expect(strict.status).toBe(1);

      await writeFile(join(dir, 'legacy.bin'), flipByte(content, 0));
      const refused = run('minisign', ['-V', '-m', 'legacy.bin', '-p', 'release.minisign.pub'], dir);
      expect(refused.status).toBe(1);
      expect(refused.stderr).toContain('Signature verification failed');
    });

    it('verifies its own signature against the .pub PEM as well as the minisign key', () => {
      for (const pub of ['release.pub', 'release.minisign.pub']) {
        const verified = drover(['minisign', 'verify', '--pub', pub, 'artifact.tar.gz'], dir);
        expect(verified.status, verified.stderr).toBe(0);
        expect(verified.stdout).toContain('Trusted comment: drover release 1.2.3');
      }
    });

    it('rejects a trusted comment minisign could not read, without writing a signature', () => {
      const refused = drover(['minisign', 'sign', '--key', 'release.key', '--trusted-comment', 'x'.repeat(9000), '--sig', 'never.minisig', 'artifact.tar.gz'], dir);
      expect(refused.status).toBe(1);
      expect(refused.stderr).toContain('MINISIGN_TRUSTED_COMMENT_INVALID');
      expect(existsSync(join(dir, 'never.minisig'))).toBe(false);
    });
  });
});
