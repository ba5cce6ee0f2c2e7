// `drover manager init --blob-store`: a blob store it cannot use stops it before it writes
// anything, with the stable code, and never repeats what looks like a credential. (The bucket
// that works is in test/services/s3-releases.test.ts, on the real S3 server.)
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drover } from '../helpers/cli.js';

let root = '';
const env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: tmpdir() };

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'drover-init-blobs-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('drover manager init --blob-store', () => {
  it.each([
    ['credentials pasted into the URL', ['--blob-store', 's3://AKIAEXAMPLE:pasted-secret@bucket/p'], {}, 'BLOB_STORE_INVALID'],
    ['a URL of another scheme', ['--blob-store', 'minio://bucket'], {}, 'BLOB_STORE_INVALID'],
    ['an endpoint carrying credentials', ['--blob-store', 's3://bucket', '--s3-endpoint', 'https://user:pasted-secret@s3.example'], {}, 'BLOB_STORE_INVALID'],
    ['DROVER_S3_ENDPOINT naming a port nothing listens on', ['--blob-store', 's3://bucket', '--s3-path-style'], { DROVER_S3_ENDPOINT: 'http://127.0.0.1:9', AWS_ACCESS_KEY_ID: 'id', AWS_SECRET_ACCESS_KEY: 'pasted-secret' }, 'BLOB_STORE_UNREACHABLE'],
  ])('refuses %s with its code and writes nothing', async (what, args, extraEnv, code) => {
    const dir = join(root, what.replace(/\W+/g, '-'));
    const result = await drover(['manager', 'init', '--dir', dir, ...args], { env: { ...env, ...extraEnv } });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(code);
    expect(`${result.stdout}${result.stderr}`).not.toContain('pasted-secret');
    expect(existsSync(dir)).toBe(false);
  }, 30_000);

  it('documents the options and their variables in --help', async () => {
    const help = await drover(['manager', 'init', '--help'], { env });
    expect(help.code).toBe(0);
    for (const text of ['--blob-store', '--s3-endpoint', '--s3-region', '--s3-path-style', '--s3-download-endpoint', 'DROVER_BLOB_STORE', 'AWS_ACCESS_KEY_ID']) expect(help.stdout).toContain(text);
  });
});
