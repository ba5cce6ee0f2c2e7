// One BlobStore contract, run against the filesystem store and the S3 store on the real S3 server
// of scripts/services.sh: content-addressed put/stat/read/range/delete, and what must never happen
// (bytes too many, too few or not the signed ones becoming visible), including a real multipart
// upload above the threshold, aborted when its bytes do not verify. Then the S3 store's own errors.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, DeleteBucketCommand, DeleteObjectCommand, HeadObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReleaseError } from '@drover/protocol';
import type { BlobStore } from '../../packages/manager/src/blobs/blob-store.js';
import { FsBlobStore } from '../../packages/manager/src/blobs/fs-blob-store.js';
import { S3BlobStore } from '../../packages/manager/src/blobs/s3-blob-store.js';
import { ManagerError } from '../../packages/manager/src/errors.js';
import { expectRejection } from '../helpers/expect-error.js';
import { skipWithoutServices, startServices } from '../helpers/services.js';
import { chunks, readAll } from '../helpers/streams.js';
import type { S3Service, Services } from '../helpers/services.js';

const digest = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');
const MiB = 1024 * 1024;


interface Subject {
  store: () => BlobStore;
  /** Keys or files the store holds, in progress or visible: empty once a refused put is cleaned up. */
  leftovers: () => Promise<string[]>;
  /** Checks, after the large put, how the store wrote it (S3: a multipart upload of two parts). */
  afterLargePut?: (sha256: string) => Promise<void>;
}

/** The contract every BlobStore keeps; `big` is a size above the S3 store's multipart threshold in these tests. */
function contract(name: string, subject: Subject, big: number): void {
  describe(`BlobStore contract: ${name}`, () => {
    it('stores verified bytes content-addressed, reads them whole or by range, and deletes them', async () => {
      const blobs = subject.store();
      const bytes = randomBytes(100_000);
      const sha256 = digest(bytes);
      expect(await blobs.stat(sha256)).toBeUndefined();
      expect(await blobs.put(chunks(bytes), { size: bytes.length, sha256 })).toEqual({ size: 100_000, sha256 });
      expect(await blobs.stat(sha256)).toEqual({ size: 100_000, sha256 });
      expect((await readAll(await blobs.read(sha256))).equals(bytes)).toBe(true);
      expect((await readAll(await blobs.read(sha256, { start: 1000, end: 1999 }))).equals(bytes.subarray(1000, 2000))).toBe(true);
      expect((await readAll(await blobs.read(sha256, { start: 99_990, end: 99_999 }))).equals(bytes.subarray(99_990))).toBe(true);
      await blobs.delete(sha256);
      expect(await blobs.stat(sha256)).toBeUndefined();
      await expect(blobs.read(sha256)).rejects.toMatchObject({ code: 'ENOENT' });
      await blobs.delete(sha256); // a no-op when absent
      expect(await subject.leftovers()).toEqual([]);
    });

    it('a second put of stored bytes is a no-op that still checks its source', async () => {
      const blobs = subject.store();
      const bytes = randomBytes(5000);
      const sha256 = digest(bytes);
      await blobs.put(chunks(bytes), { size: 5000, sha256 });
      expect(await blobs.put(chunks(bytes), { size: 5000, sha256 })).toEqual({ size: 5000, sha256 });
      const flipped = Buffer.from(bytes);
      flipped[10] = (flipped[10] ?? 0) ^ 0xff;
      await expectRejection(blobs.put(chunks(flipped), { size: 5000, sha256 }), ReleaseError, 'ARTIFACT_DIGEST_MISMATCH');
      expect((await readAll(await blobs.read(sha256))).equals(bytes)).toBe(true);
      await blobs.delete(sha256);
    });

    it('stops reading at the first byte past the size, and nothing becomes visible', async () => {
      const blobs = subject.store();
      const bytes = randomBytes(10_000);
      const expect2500 = { size: 2500, sha256: digest(bytes.subarray(0, 2500)) };
      let pulled = 0;
      async function* counted(): AsyncGenerator<Uint8Array> {
        for await (const chunk of chunks(bytes, 1000)) {
          pulled += 1;
          yield chunk;
        }
      }
      await expectRejection(blobs.put(counted(), expect2500), ReleaseError, 'ARTIFACT_TOO_LARGE');
      expect(pulled).toBe(3);
      expect(await blobs.stat(expect2500.sha256)).toBeUndefined();
      expect(await subject.leftovers()).toEqual([]);
    });

    it('refuses too few bytes and modified bytes, leaving nothing visible', async () => {
      const blobs = subject.store();
      const bytes = randomBytes(3000);
      const sha256 = digest(bytes);
      await expectRejection(blobs.put(chunks(bytes.subarray(0, 2999)), { size: 3000, sha256 }), ReleaseError, 'ARTIFACT_TOO_SHORT');
      const flipped = Buffer.from(bytes);
      flipped[1234] = (flipped[1234] ?? 0) ^ 1;
      await expectRejection(blobs.put(chunks(flipped), { size: 3000, sha256 }), ReleaseError, 'ARTIFACT_DIGEST_MISMATCH');
      expect(await blobs.stat(sha256)).toBeUndefined();
      expect(await subject.leftovers()).toEqual([]);
    });

    it('stores a large blob (a multipart upload on S3) and refuses a modified one without a trace', async () => {
      const blobs = subject.store();
      const bytes = randomBytes(big);
      const sha256 = digest(bytes);
      const flipped = Buffer.from(bytes);
      flipped[big - 1] = (flipped[big - 1] ?? 0) ^ 1; // the very last byte: every part but the last went up
      await expectRejection(blobs.put(chunks(flipped, MiB), { size: big, sha256 }), ReleaseError, 'ARTIFACT_DIGEST_MISMATCH');
      await expectRejection(blobs.put(chunks(bytes.subarray(0, big - 10), MiB), { size: big, sha256 }), ReleaseError, 'ARTIFACT_TOO_SHORT');
      expect(await blobs.stat(sha256)).toBeUndefined();
      expect(await subject.leftovers()).toEqual([]);

      await blobs.put(chunks(bytes, MiB), { size: big, sha256 });
      expect(await blobs.stat(sha256)).toEqual({ size: big, sha256 });
      await subject.afterLargePut?.(sha256);
      const back = await readAll(await blobs.read(sha256));
      expect(back.length).toBe(big);
      expect(digest(back)).toBe(sha256);
      expect((await readAll(await blobs.read(sha256, { start: 5 * MiB - 10, end: 5 * MiB + 9 }))).equals(bytes.subarray(5 * MiB - 10, 5 * MiB + 10))).toBe(true);
      await blobs.delete(sha256);
    }, 60_000);

    it('names blobs only by a SHA-256', async () => {
      await expect(subject.store().stat('../../etc/passwd')).rejects.toThrow(RangeError);
    });
  });
}

// The filesystem store: always.
let root = '';
let fsStore: FsBlobStore | undefined;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'drover-contract-'));
  fsStore = new FsBlobStore(root);
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});
contract(
  'filesystem',
  {
    store: () => fsStore as FsBlobStore,
    leftovers: async () => {
      const { readdir } = await import('node:fs/promises');
      const tmp = await readdir(join(root, 'tmp')).catch(() => []);
      const shas = await readdir(join(root, 'sha256'), { recursive: true, withFileTypes: true }).catch(() => []);
      return [...tmp, ...shas.filter((entry) => entry.isFile()).map((entry) => entry.name)];
    },
  },
  6 * MiB,
);

// The S3 store, on the real S3 server: a 1 MiB threshold and 5 MiB parts make a 6 MiB blob a
// two-part multipart upload.
const skipS3 = skipWithoutServices('the S3 blob store contract', 's3');
let services: Services | undefined;
let config: S3Service | undefined;
let admin: S3Client | undefined;
let s3Store: S3BlobStore | undefined;
const bucket = `drover-contract-${randomBytes(4).toString('hex')}`;

describe.skipIf(skipS3)('S3BlobStore on the real S3 server', () => {
  beforeAll(async () => {
    services = await startServices('s3');
    config = services.s3;
    if (config === undefined) throw new Error('no S3 service');
    admin = new S3Client({ endpoint: config.endpoint, region: config.region, forcePathStyle: true, credentials: { accessKeyId: config.accessKeyId, secretAccessKey: config.secretAccessKey } });
    await admin.send(new CreateBucketCommand({ Bucket: bucket }));
    s3Store = new S3BlobStore({
      url: `s3://${bucket}/artifacts/sha256`,
      endpoint: config.endpoint,
      region: config.region,
      pathStyle: true,
      credentials: { accessKeyId: config.accessKeyId, secretAccessKey: config.secretAccessKey },
      multipartThresholdBytes: MiB,
      partSizeBytes: 5 * MiB,
    });
  }, 120_000);

  afterAll(async () => {
    if (admin !== undefined) {
      const listed = await admin.send(new ListObjectsV2Command({ Bucket: bucket })).catch(() => undefined);
      for (const object of listed?.Contents ?? []) await admin.send(new DeleteObjectCommand({ Bucket: bucket, Key: object.Key }));
      await admin.send(new DeleteBucketCommand({ Bucket: bucket })).catch(() => undefined);
      admin.destroy();
    }
    s3Store?.close();
    await services?.stop();
  }, 60_000);

  const s3 = (): S3Client => {
    if (admin === undefined) throw new Error('the S3 server did not start');
    return admin;
  };

  contract(
    'S3',
    {
      store: () => s3Store as S3BlobStore,
      leftovers: async () => {
        const objects = await s3().send(new ListObjectsV2Command({ Bucket: bucket }));
        const uploads = await s3().send(new ListMultipartUploadsCommand({ Bucket: bucket }));
        return [...(objects.Contents ?? []).map((o) => `object ${o.Key ?? ''}`), ...(uploads.Uploads ?? []).map((u) => `upload ${u.Key ?? ''}`)];
      },
      afterLargePut: async (sha256) => {
        // A multipart object's ETag is the MD5 of its parts' MD5s, then "-<parts>": 5 MiB + 1 MiB.
        const head = await s3().send(new HeadObjectCommand({ Bucket: bucket, Key: `artifacts/sha256/${sha256}` }));
        expect(head.ETag).toMatch(/-2"$/);
      },
    },
    6 * MiB,
  );

  it('keys objects <prefix>/<sha256>, and hands out a presigned GET the server itself checks', async () => {
    const store = s3Store as S3BlobStore;
    const bytes = randomBytes(2000);
    const sha256 = digest(bytes);
    await store.put(chunks(bytes), { size: 2000, sha256 });
    const listed = await s3().send(new ListObjectsV2Command({ Bucket: bucket }));
    expect(listed.Contents?.map((o) => o.Key)).toEqual([`artifacts/sha256/${sha256}`]);
    const now = new Date();
    const signed = await store.downloadUrl(sha256, { ttlSeconds: 120, now });
    expect(signed.url).toContain('X-Amz-Signature=');
    expect(signed.url).toContain('X-Amz-Expires=120');
    expect(signed.expiresAt.getTime()).toBe(Math.floor(now.getTime() / 1000) * 1000 + 120_000);
    const good = await request(signed.url);
    expect(good.statusCode).toBe(200);
    expect(Buffer.from(await good.body.arrayBuffer()).equals(bytes)).toBe(true);
    // Signed an hour ago for 60 s: the server itself refuses it.
    const stale = await store.downloadUrl(sha256, { ttlSeconds: 60, now: new Date(Date.now() - 3600_000) });
    const refused = await request(stale.url);
    expect(refused.statusCode).toBe(403);
    await refused.body.dump();
    await store.delete(sha256);
  });

  it('a second put of the same bytes repairs an object altered in the bucket', async () => {
    const store = s3Store as S3BlobStore;
    const bytes = randomBytes(3000);
    const sha256 = digest(bytes);
    await store.put(chunks(bytes), { size: 3000, sha256 });
    const altered = Buffer.from(bytes);
    altered[0] = (altered[0] ?? 0) ^ 1;
    await s3().send(new PutObjectCommand({ Bucket: bucket, Key: `artifacts/sha256/${sha256}`, Body: altered }));
    await store.put(chunks(bytes), { size: 3000, sha256 });
    expect((await readAll(await store.read(sha256))).equals(bytes)).toBe(true);
    await store.delete(sha256);
  });

  it('answers BLOB_STORE_* codes for a missing bucket, refused credentials and an unreachable endpoint, and never shows the secret', async () => {
    const c = config as S3Service;
    const base = { endpoint: c.endpoint, region: c.region, pathStyle: true };
    const missing = new S3BlobStore({ ...base, url: 's3://drover-no-such-bucket', credentials: { accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey } });
    await expectRejection(missing.ping(), ManagerError, 'BLOB_STORE_BUCKET_NOT_FOUND');
    const bytes = Buffer.from('x');
    await expectRejection(missing.put(chunks(bytes), { size: 1, sha256: digest(bytes) }), ManagerError, 'BLOB_STORE_BUCKET_NOT_FOUND');

    const secret = 'not-the-secret-0123456789';
    const denied = new S3BlobStore({ ...base, url: `s3://${bucket}`, credentials: { accessKeyId: c.accessKeyId, secretAccessKey: secret } });
    await expectRejection(denied.ping(), ManagerError, 'BLOB_STORE_ACCESS_DENIED');
    const refused = await denied.put(chunks(bytes), { size: 1, sha256: digest(bytes) }).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(ManagerError);
    expect((refused as ManagerError).code).toBe('BLOB_STORE_ACCESS_DENIED');
    // The SDK's error carries the StringToSign and CanonicalRequest: none of it is kept.
    const shown = JSON.stringify({ message: (refused as Error).message, cause: String((refused as Error).cause), ...(refused as object) });
    expect(shown).not.toContain(secret);
    expect(shown).not.toContain('StringToSign');
    expect(shown).not.toContain(c.accessKeyId);

    const unreachable = new S3BlobStore({ url: `s3://${bucket}`, endpoint: 'http://127.0.0.1:9', region: 'us-east-1', pathStyle: true, credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
    await expectRejection(unreachable.ping(), ManagerError, 'BLOB_STORE_UNREACHABLE');
    for (const store of [missing, denied, unreachable]) store.close();
  }, 60_000);
});

describe('S3BlobStore configuration', () => {
  it.each([
    ['not a URL', { url: 'bucket/prefix' }],
    ['credentials in the URL', { url: 's3://AKIA:secret@bucket/prefix' }],
    ['a bad bucket name', { url: 's3://UPPER_case' }],
    ['a .. in the prefix', { url: 's3://bucket/a/../b' }],
    ['an endpoint with credentials', { url: 's3://bucket', endpoint: 'https://user:pw@s3.example.com' }],
    ['an endpoint that is not http(s)', { url: 's3://bucket', endpoint: 'ftp://s3.example.com' }],
    ['a malformed region', { url: 's3://bucket', region: 'Us East' }],
    ['parts below S3 minimum', { url: 's3://bucket', partSizeBytes: 1024 }],
  ])('refuses %s with BLOB_STORE_INVALID, without repeating it', (_what, options) => {
    let caught: unknown;
    try {
      new S3BlobStore(options);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ManagerError);
    expect((caught as ManagerError).code).toBe('BLOB_STORE_INVALID');
    expect((caught as Error).message).not.toContain('secret');
    expect((caught as Error).message).not.toContain('pw@');
  });

  it('signs download URLs for --s3-download-endpoint when hosts reach the bucket elsewhere (the signature covers the host)', async () => {
    const store = new S3BlobStore({ url: 's3://artifacts/p', endpoint: 'http://10.0.0.5:9000', downloadEndpoint: 'https://cdn.example.com', pathStyle: true, credentials: { accessKeyId: 'id', secretAccessKey: 'secret' } });
    const sha256 = 'ab'.repeat(32);
    const signed = new URL((await store.downloadUrl(sha256, { ttlSeconds: 600, now: new Date() })).url);
    expect(`${signed.origin}${signed.pathname}`).toBe(`https://cdn.example.com/artifacts/p/${sha256}`);
    expect(signed.searchParams.get('X-Amz-SignedHeaders')).toBe('host');
    // SigV4's longest lifetime is 7 days: a longer deadline is capped.
    const capped = new URL((await store.downloadUrl(sha256, { ttlSeconds: 30 * 86400, now: new Date() })).url);
    expect(capped.searchParams.get('X-Amz-Expires')).toBe(String(7 * 86400));
    store.close();
  });
});
