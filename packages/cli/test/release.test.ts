import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ed25519PrivateKey, Ed25519PublicKey, parseEnvelope } from '@drover/protocol';
import { drover } from '../../../test/helpers/cli.js';

let dir: string;
const at = (name: string): string => join(dir, name);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'drover-cli-'));
  await writeFile(at('agent.bin'), Buffer.alloc(300_000, 7));
  await writeFile(at('CHANGES'), 'fix: memory leak\nfeat: new endpoint\n');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function errorCode(stdout: string): string {
  return (JSON.parse(stdout) as { error: { code: string } }).error.code;
}

describe('drover keygen', () => {
  it('writes NAME.key (0600), NAME.pub and refuses to overwrite', async () => {
    const result = await drover(['keygen', '--out', at('keys'), '--name', 'rel', '--json']);
    expect(result.code).toBe(0);
    const data = JSON.parse(result.stdout) as { keyid: string };
    expect((await stat(at('keys/rel.key'))).mode & 0o777).toBe(0o600);
    const key = Ed25519PrivateKey.from(await readFile(at('keys/rel.key'), 'utf8'));
    expect(key.keyid).toBe(data.keyid);
    expect(Ed25519PublicKey.from(await readFile(at('keys/rel.pub'), 'utf8')).keyid).toBe(data.keyid);
    // The private key never reaches the output.
    expect(result.stdout).not.toContain(Buffer.from(key.exportSeed()).toString('base64'));

    const again = await drover(['keygen', '--out', at('keys'), '--name', 'rel', '--json']);
    expect(again.code).toBe(1);
    expect(errorCode(again.stdout)).toBe('FILE_EXISTS');
    expect(Ed25519PrivateKey.from(await readFile(at('keys/rel.key'), 'utf8')).keyid).toBe(data.keyid);
  });

  it('has --help and rejects unknown options with USAGE_ERROR', async () => {
    const help = await drover(['keygen', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: drover keygen --out DIR');
    const bad = await drover(['keygen', '--bogus']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('USAGE_ERROR');
  });
});

describe('drover option values', () => {
  it('takes a value that starts with a dash, unless it is one of the command\'s options', async () => {
    const dashed = await drover(['keygen', '--out', '-keys', '--name', 'dash', '--json'], { cwd: dir });
    expect(dashed.code, dashed.stderr).toBe(0);
    expect((await stat(at('-keys/dash.key'))).isFile()).toBe(true);
    const missing = await drover(['keygen', '--out', '--name', 'x', '--json'], { cwd: dir });
    expect([missing.code, errorCode(missing.stdout)]).toEqual([2, 'USAGE_ERROR']);
    await expect(stat(at('--name'))).rejects.toThrow();
  });
});

describe('drover release sign / verify', () => {
  beforeAll(async () => {
    await drover(['keygen', '--out', at('keys'), '--name', 'a']);
    await drover(['keygen', '--out', at('keys'), '--name', 'b']);
    await drover(['keygen', '--out', at('keys'), '--name', 'stranger']);
  });

  it('signs with two keys, and verifies with a 2-of-2 trust policy', async () => {
    const signed = await drover(['release', 'sign', '--key', at('keys/a.key'), '--key', at('keys/b.key'), '--artifact', 'agent', '--version', '1.2.0', '--platform', 'linux-x64', '--changelog-file', at('CHANGES'), '--expires-in', '30d', at('agent.bin')]);
    expect(signed.code).toBe(0);
    const envelope = parseEnvelope(await readFile(at('agent.bin.release.json'), 'utf8'));
    expect(envelope.signatures).toHaveLength(2);
    const trust = await drover(['trust', 'create', '--pub', at('keys/a.pub'), '--pub', at('keys/b.pub'), '--threshold', '2', '--out', at('trust.json')]);
    expect(trust.code).toBe(0);
    const verified = await drover(['release', 'verify', '--trust', at('trust.json'), '--platform', 'linux-x64', '--artifact', 'agent', '--running-version', '1.1.0', at('agent.bin')]);
    expect(verified.stdout).toContain('VERIFIED agent 1.2.0 for linux-x64');
    expect(verified.code).toBe(0);
  });

  it('takes the old spellings --changelog and --commit as hidden aliases of --changelog-file and --commit-sha', async () => {
    const signed = await drover(['release', 'sign', '--json', '--key', at('keys/a.key'), '--artifact', 'agent', '--version', '1.2.1', '--platform', 'linux-x64', '--changelog', at('CHANGES'), '--commit', 'abc1234', '--out', at('aliases.json'), at('agent.bin')]);
    expect(signed.code, signed.stdout).toBe(0);
    expect((JSON.parse(signed.stdout) as { manifest: unknown }).manifest).toMatchObject({ commitSha: 'abc1234', changelog: 'fix: memory leak\nfeat: new endpoint' });
    const help = await drover(['release', 'sign', '--help']);
    expect(help.stdout).toContain('--changelog-file <FILE>');
    expect(help.stdout).not.toMatch(/--changelog |--commit /);
  });

  it('refuses each broken rule with its code and exit 1 (2 for a usage error)', async () => {
    const base = ['release', 'verify', '--json'];
    const cases: [string[], string][] = [
      [['--pub', at('keys/stranger.pub'), at('agent.bin')], 'RELEASE_UNTRUSTED_SIGNER'],
      [['--pub', at('keys/a.pub'), '--platform', 'linux-arm64', at('agent.bin')], 'RELEASE_WRONG_PLATFORM'],
      [['--pub', at('keys/a.pub'), '--artifact', 'daemon', at('agent.bin')], 'RELEASE_WRONG_ARTIFACT'],
      [['--pub', at('keys/a.pub'), '--running-version', '1.2.0', at('agent.bin')], 'DOWNGRADE_REFUSED'],
      [['--pub', at('keys/a.pub'), '--pub', at('keys/stranger.pub'), '--threshold', '2', at('agent.bin')], 'RELEASE_THRESHOLD_NOT_MET'],
      [['--pub', at('keys/a.pub'), at('missing.bin')], 'FILE_NOT_FOUND'],
      [[at('agent.bin')], 'USAGE_ERROR'],
    ];
    for (const [args, code] of cases) {
      const result = await drover([...base, ...args]);
      expect({ args, code: result.code, error: errorCode(result.stdout) }).toEqual({ args, code: code === 'USAGE_ERROR' ? 2 : 1, error: code });
    }
  });

  it('refuses a flipped byte in the artifact and an artifact that grew', async () => {
    const original = await readFile(at('agent.bin'));
    const flipped = Buffer.from(original);
    flipped[1234] = (flipped[1234] ?? 0) ^ 1;
    await writeFile(at('flipped.bin'), flipped);
    let result = await drover(['release', 'verify', '--json', '--pub', at('keys/a.pub'), '--release', at('agent.bin.release.json'), at('flipped.bin')]);
    expect([result.code, errorCode(result.stdout)]).toEqual([1, 'ARTIFACT_DIGEST_MISMATCH']);
    await writeFile(at('grown.bin'), Buffer.concat([original, Buffer.from('x')]));
    // --envelope: the old spelling of --release, kept as a hidden alias.
    result = await drover(['release', 'verify', '--json', '--pub', at('keys/a.pub'), '--envelope', at('agent.bin.release.json'), at('grown.bin')]);
    expect([result.code, errorCode(result.stdout)]).toEqual([1, 'ARTIFACT_TOO_LARGE']);
  });

  it('refuses a tampered envelope', async () => {
    const envelope = JSON.parse(await readFile(at('agent.bin.release.json'), 'utf8')) as { payload: string };
    const payload = JSON.parse(Buffer.from(envelope.payload, 'base64').toString('utf8')) as { version: string };
    payload.version = '9.9.9';
    envelope.payload = Buffer.from(JSON.stringify(payload)).toString('base64');
    await writeFile(at('tampered.json'), JSON.stringify(envelope));
    const result = await drover(['release', 'verify', '--json', '--pub', at('keys/a.pub'), '--release', at('tampered.json'), at('agent.bin')]);
    expect([result.code, errorCode(result.stdout)]).toEqual([1, 'RELEASE_SIGNATURE_INVALID']);
  });

  // The report names only keys whose signatures verified: a trusted key with a broken signature
  // (or one listed twice) did not vouch for the release and must not be shown as a signer.
  it('reports as signers only the trusted keys whose signatures verified, each once', async () => {
    const envelope = JSON.parse(await readFile(at('agent.bin.release.json'), 'utf8')) as { signatures: { keyid: string; sig: string }[] };
    const [a, b] = envelope.signatures;
    if (a === undefined || b === undefined) throw new Error('expected two signatures');
    const broken = Buffer.from(b.sig, 'base64');
    broken[5] = (broken[5] ?? 0) ^ 1;
    const edited = { ...envelope, signatures: [a, a, { keyid: b.keyid, sig: broken.toString('base64') }] };
    await writeFile(at('one-broken.json'), JSON.stringify(edited));
    const result = await drover(['release', 'verify', '--json', '--pub', at('keys/a.pub'), '--pub', at('keys/b.pub'), '--release', at('one-broken.json'), at('agent.bin')]);
    expect(result.code).toBe(0);
    expect((JSON.parse(result.stdout) as { signers: string[] }).signers).toEqual([a.keyid]);
  });

  it('refuses a bad duration and a missing key with clear codes, writing nothing', async () => {
    let result = await drover(['release', 'sign', '--json', '--key', at('keys/a.key'), '--artifact', 'agent', '--version', '1.3.0', '--platform', 'linux-x64', '--expires-in', 'forever', '--out', at('never.json'), at('agent.bin')]);
    expect([result.code, errorCode(result.stdout)]).toEqual([2, 'USAGE_ERROR']);
    result = await drover(['release', 'sign', '--json', '--key', at('keys/nope.key'), '--artifact', 'agent', '--version', '1.3.0', '--platform', 'linux-x64', '--out', at('never.json'), at('agent.bin')]);
    expect([result.code, errorCode(result.stdout)]).toEqual([1, 'FILE_NOT_FOUND']);
    result = await drover(['release', 'sign', '--json', '--key', at('keys/a.pub'), '--artifact', 'agent', '--version', '1.3.0', '--platform', 'linux-x64', '--out', at('never.json'), at('agent.bin')]);
    expect([result.code, errorCode(result.stdout)]).toEqual([1, 'KEY_INVALID']);
    await expect(stat(at('never.json'))).rejects.toThrow();
  });
});
