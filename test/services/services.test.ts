// The real services the scale-out work runs on, as scripts/services.sh starts them: PostgreSQL
// answers SQL, and the S3-protocol server does what drover will rely on when hosts download from
// presigned URLs: it serves the exact bytes (multipart upload included), and it refuses a URL whose
// signature was tampered with, one signed for another key, and one past its expiry, by itself.
import { createHash, randomBytes } from 'node:crypto';
import { CompleteMultipartUploadCommand, CreateBucketCommand, CreateMultipartUploadCommand, GetObjectCommand, PutObjectCommand, S3Client, UploadPartCommand } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import pg from 'pg';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { skipWithoutServices, startServices } from '../helpers/services.js';
import type { Services } from '../helpers/services.js';

const skip = skipWithoutServices('the test-service suite', 'postgres', 's3');

/** GET `url` as a host would: the status and the body's bytes. */
async function get(url: string): Promise<{ status: number; body: Buffer }> {
  const response = await request(url);
  return { status: response.statusCode, body: Buffer.from(await response.body.arrayBuffer()) };
}

describe.skipIf(skip)('test services (scripts/services.sh)', () => {
  let services: Services | undefined;
  let client: S3Client | undefined;
  const s3 = (): S3Client => {
    if (client === undefined) throw new Error('the S3 client was not made (the services did not start)');
    return client;
  };

  beforeAll(async () => {
    services = await startServices('postgres', 's3');
    const config = services.s3;
    if (config === undefined) throw new Error('no S3 service');
    client = new S3Client({
      endpoint: config.endpoint,
      region: config.region,
      forcePathStyle: true,
      credentials: { accessKeyId: config.accessKeyId, secretAccessKey: config.secretAccessKey },
    });
    await s3().send(new CreateBucketCommand({ Bucket: 'drover-test' }));
  }, 120_000);

  afterAll(async () => {
    client?.destroy();
    await services?.stop();
  }, 60_000);

  it('PostgreSQL: connects, writes and reads back in a transaction', async () => {
    const client = new pg.Client({ connectionString: services?.postgres?.url });
    await client.connect();
    try {
      await client.query('BEGIN');
      await client.query('CREATE TEMP TABLE t (id int primary key, note text)');
      await client.query('INSERT INTO t VALUES ($1, $2)', [1, 'drover']);
      const { rows } = await client.query<{ note: string }>('SELECT note FROM t WHERE id = $1', [1]);
      await client.query('COMMIT');
      expect(rows).toEqual([{ note: 'drover' }]);
      const version = await client.query<{ server_version_num: string }>('SHOW server_version_num');
      expect(Number(version.rows[0]?.server_version_num)).toBeGreaterThanOrEqual(130_000);
    } finally {
      await client.end();
    }
  });

  it('S3: a multipart upload comes back byte for byte through a presigned GET', async () => {
    const part1 = randomBytes(5 * 1024 * 1024); // every part but the last is at least 5 MiB
    const part2 = randomBytes(123_457);
    const { UploadId } = await s3().send(new CreateMultipartUploadCommand({ Bucket: 'drover-test', Key: 'agent/2.0.0/agent.bin' }));
    const parts = [];
    for (const [i, body] of [part1, part2].entries()) {
      const { ETag } = await s3().send(new UploadPartCommand({ Bucket: 'drover-test', Key: 'agent/2.0.0/agent.bin', UploadId, PartNumber: i + 1, Body: body }));
      parts.push({ ETag, PartNumber: i + 1 });
    }
    await s3().send(new CompleteMultipartUploadCommand({ Bucket: 'drover-test', Key: 'agent/2.0.0/agent.bin', UploadId, MultipartUpload: { Parts: parts } }));
    const url = await getSignedUrl(s3(), new GetObjectCommand({ Bucket: 'drover-test', Key: 'agent/2.0.0/agent.bin' }), { expiresIn: 60 });
    const response = await get(url);
    expect(response.status).toBe(200);
    const bytes = response.body;
    const digest = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
    expect(bytes.length).toBe(part1.length + part2.length);
    expect(digest(bytes)).toBe(digest(Buffer.concat([part1, part2])));
  });

  it('S3: refuses a presigned URL with a tampered signature, one moved to another key, and one past its expiry', async () => {
    await s3().send(new PutObjectCommand({ Bucket: 'drover-test', Key: 'a.bin', Body: Buffer.from('artifact a') }));
    await s3().send(new PutObjectCommand({ Bucket: 'drover-test', Key: 'b.bin', Body: Buffer.from('artifact b') }));
    const url = await getSignedUrl(s3(), new GetObjectCommand({ Bucket: 'drover-test', Key: 'a.bin' }), { expiresIn: 2 });
    const signedAt = Date.now();
    const good = await get(url);
    expect(good.status).toBe(200);
    expect(good.body.toString()).toBe('artifact a');

    const tampered = url.replace(/X-Amz-Signature=([0-9a-f])/, (_m, c: string) => `X-Amz-Signature=${c === '0' ? '1' : '0'}`);
    expect(tampered).not.toBe(url);
    const refusedSignature = await get(tampered);
    expect(refusedSignature.status).toBe(403);
    expect(refusedSignature.body.toString()).toContain('SignatureDoesNotMatch');

    const otherKey = await get(url.replace('/a.bin?', '/b.bin?'));
    expect(otherKey.status).toBe(403);
    expect(otherKey.body.toString()).toContain('SignatureDoesNotMatch');

    // The URL's own clock: X-Amz-Date is whole seconds, so it is past its 2 s by 3 s after signing.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, signedAt + 3_100 - Date.now())));
    const expired = await get(url);
    expect(expired.status).toBe(403);
    expect(expired.body.toString()).toContain('Request has expired');
  });
});
