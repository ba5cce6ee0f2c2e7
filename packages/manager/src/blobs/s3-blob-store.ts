import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import type { CompletedPart, S3ClientConfig } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { deadlineSignal } from '@drover/http';
import { ArtifactVerifier } from '@drover/protocol';
import type { Logger } from 'pino';
import { ManagerError } from '../errors.js';
import { silentLogger } from '../logger.js';
import type { BlobDownloadUrl, BlobInfo, BlobStore, ByteRange } from './blob-store.js';
import { checkS3Config, credentialsFromEnv } from './s3-config.js';
import type { S3BlobStoreConfig } from './s3-config.js';
import { blobStoreError, isNotFound } from './s3-errors.js';

// The S3 BlobStore (AWS S3, Cloudflare R2, MinIO, Swift's s3api): objects `<prefix>/<sha256>`.
// Nothing becomes visible before its size and SHA-256 are verified (docs/decisions/0025-s3-blob-store.md):
// - up to multipartThresholdBytes (16 MiB), the bytes are buffered and verified as they stream in,
//   then sent in one PutObject with Content-MD5 and x-amz-checksum-sha256, which the object store
//   checks against what it received (the bytes verified are the bytes stored);
// - above it, a multipart upload to the final key: the stream is hashed as it comes, each part is
//   sent with its Content-MD5 (part SHA-256 checksums are not used: Swift's s3api refuses them in
//   CompleteMultipartUpload, and the whole-object SHA-256 is verified here anyway); CompleteMultipartUpload, the only call that makes the object exist, is
//   sent only once the whole stream verified; any failure aborts the upload, so a wrong or cut
//   stream leaves no object (an interrupted manager leaves an invisible incomplete upload, which a
//   bucket lifecycle rule, AbortIncompleteMultipartUpload, removes).

const SHA256_HEX = /^[0-9a-f]{64}$/;
const MiB = 1024 * 1024;

/** S3's limits on a multipart upload's parts, and the store's defaults. */
export const s3Limits = {
  multipartThresholdBytes: 16 * MiB, // bytes: above this, a multipart upload (at most this much is buffered)
  partSizeBytes: 8 * MiB, // bytes per part of a multipart upload
  minPartSizeBytes: 5 * MiB, // bytes: S3's smallest part but the last
  maxPartSizeBytes: 512 * MiB, // bytes: drover's cap on one buffered part
  maxParts: 10_000, // parts in one upload (S3's limit)
  maxPresignTtlSeconds: 7 * 86400, // seconds: SigV4's longest presigned URL
  pingTimeoutMs: 5_000, // ms /readyz waits for HeadBucket
  connectTimeoutMs: 5_000, // ms to open a connection to the object store
  requestTimeoutMs: 60_000, // ms of silence on a socket before the request fails
} as const;

/** How to open an {@link S3BlobStore}: the bucket (`url`), endpoint, region, path style, and credentials. */
export interface S3BlobStoreOptions extends S3BlobStoreConfig {
  /** Default: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN of `env`, else the SDK's credential chain. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string } | undefined;
  /** Read for the AWS credentials (default process.env). */
  env?: Record<string, string | undefined> | undefined;
  /** Bytes above which a blob goes up as a multipart upload (default 16 MiB). */
  multipartThresholdBytes?: number | undefined;
  /** Bytes per part of a multipart upload, at least 5 MiB (default 8 MiB). */
  partSizeBytes?: number | undefined;
  logger?: Logger | undefined;
}

const md5 = (bytes: Uint8Array): string => createHash('md5').update(bytes).digest('base64');

/**
 * Artifact bytes in an S3-compatible bucket, content-addressed as `<prefix>/<sha256>`; hosts
 * download them through short-lived SigV4 presigned URLs. Credentials come from the AWS variables
 * or the SDK's chain, never from the configuration.
 *
 * @example
 * ```ts
 * const blobs = new S3BlobStore({ url: 's3://artifacts/drover', endpoint: 'http://127.0.0.1:9000', pathStyle: true })
 * await startManager({ dir, blobs })
 * ```
 */
export class S3BlobStore implements BlobStore {
  /** The bucket of the `s3://` URL. */
  readonly bucket: string;
  /** The key prefix ('' or without slashes at either end): objects are `<prefix>/<sha256>`. */
  readonly prefix: string;
  readonly #client: S3Client;
  readonly #presignClient: S3Client;
  readonly #where: string;
  readonly #threshold: number;
  readonly #partSize: number;
  readonly #logger: Logger;

  /** @throws {@link ManagerError} `BLOB_STORE_INVALID` when the URL or an option is malformed. */
  constructor(options: S3BlobStoreOptions) {
    const config = checkS3Config(options);
    this.bucket = config.bucket;
    this.prefix = config.prefix;
    this.#threshold = options.multipartThresholdBytes ?? s3Limits.multipartThresholdBytes;
    this.#partSize = options.partSizeBytes ?? s3Limits.partSizeBytes;
    if (!Number.isSafeInteger(this.#threshold) || this.#threshold < 0 || this.#threshold > s3Limits.maxPartSizeBytes) {
      throw new ManagerError('BLOB_STORE_INVALID', `multipartThresholdBytes must be a whole number of bytes from 0 to ${s3Limits.maxPartSizeBytes}.`);
    }
    if (!Number.isSafeInteger(this.#partSize) || this.#partSize < s3Limits.minPartSizeBytes || this.#partSize > s3Limits.maxPartSizeBytes) {
      throw new ManagerError('BLOB_STORE_INVALID', `partSizeBytes must be from ${s3Limits.minPartSizeBytes} (S3's smallest part) to ${s3Limits.maxPartSizeBytes} bytes.`);
    }
    this.#logger = options.logger ?? silentLogger();
    this.#where = `${config.url}${config.endpoint === undefined ? '' : ` at ${config.endpoint}`}`;
    const credentials = options.credentials ?? credentialsFromEnv(options.env ?? process.env);
    const base: S3ClientConfig = {
      region: config.region ?? 'us-east-1',
      forcePathStyle: config.pathStyle ?? false,
      // Checksums only where an operation needs one: drover sends its own (Content-MD5 and SHA-256)
      // on every upload, and S3-compatible servers differ on the SDK's default CRC32 trailers.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 3,
      requestHandler: { connectionTimeout: s3Limits.connectTimeoutMs, requestTimeout: s3Limits.requestTimeoutMs },
      ...(credentials === undefined ? {} : { credentials }),
    };
    this.#client = new S3Client({ ...base, ...(config.endpoint === undefined ? {} : { endpoint: config.endpoint }) });
    const downloadEndpoint = config.downloadEndpoint ?? config.endpoint;
    // A SigV4 signature covers the Host: URLs for hosts are signed for the address hosts use.
    this.#presignClient =
      config.downloadEndpoint === undefined ? this.#client : new S3Client({ ...base, ...(downloadEndpoint === undefined ? {} : { endpoint: downloadEndpoint }) });
  }

  #key(sha256: string): string {
    // The digest names the key: only 64 hex, so no name reaches outside the prefix.
    if (!SHA256_HEX.test(sha256)) throw new RangeError('a blob is named by 64 lowercase hex characters');
    return this.prefix === '' ? sha256 : `${this.prefix}/${sha256}`;
  }

  async #send<T>(what: string, call: () => Promise<T>, options: { headBucket?: boolean } = {}): Promise<T> {
    try {
      return await call();
    } catch (error) {
      throw blobStoreError(error, what, this.#where, options);
    }
  }

  /** {@inheritDoc BlobStore.put} */
  async put(source: AsyncIterable<Uint8Array>, expect: BlobInfo): Promise<BlobInfo> {
    const key = this.#key(expect.sha256);
    // endless data: the verifier throws as soon as more than `size` bytes arrive.
    const verifier = new ArtifactVerifier(expect);
    // Bytes already stored under this digest are written again (the same bytes, replaced atomically),
    // not skipped on a HEAD: a republish then repairs an object altered in the bucket, and an upload
    // needs no more than s3:PutObject.
    if (expect.size <= this.#threshold) {
      const chunks: Buffer[] = [];
      for await (const chunk of source) {
        verifier.update(chunk);
        chunks.push(Buffer.from(chunk)); // a copy: a source may reuse its buffer
      }
      verifier.finish();
      const body = Buffer.concat(chunks);
      // The bytes verified are the bytes stored: the store checks both digests against what it received.
      await this.#send('Storing an artifact', () =>
        this.#client.send(
          new PutObjectCommand({
            Bucket: this.bucket,
            Key: key,
            Body: body,
            ContentLength: body.length,
            ContentType: 'application/octet-stream',
            ContentMD5: md5(body),
            ChecksumSHA256: Buffer.from(expect.sha256, 'hex').toString('base64'),
          }),
        ),
      );
      return { sha256: expect.sha256, size: expect.size };
    }
    await this.#putMultipart(source, expect, key, verifier);
    return { sha256: expect.sha256, size: expect.size };
  }

  async #putMultipart(source: AsyncIterable<Uint8Array>, expect: BlobInfo, key: string, verifier: ArtifactVerifier): Promise<void> {
    const partSize = Math.max(this.#partSize, Math.ceil(expect.size / s3Limits.maxParts));
    const created = await this.#send('Starting a multipart upload', () =>
      this.#client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: key, ContentType: 'application/octet-stream' })),
    );
    const uploadId = created.UploadId;
    if (uploadId === undefined) throw blobStoreError(new Error('no UploadId'), 'Starting a multipart upload', this.#where);
    const parts: CompletedPart[] = [];
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    const flush = async (): Promise<void> => {
      const body = Buffer.concat(pending);
      pending = [];
      pendingBytes = 0;
      const number = parts.length + 1;
      const sent = await this.#send('Uploading an artifact part', () =>
        this.#client.send(
          new UploadPartCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId, PartNumber: number, Body: body, ContentLength: body.length, ContentMD5: md5(body) }),
        ),
      );
      parts.push({ PartNumber: number, ETag: sent.ETag });
    };
    let completed = false;
    try {
      for await (const chunk of source) {
        verifier.update(chunk);
        for (let offset = 0; offset < chunk.length; ) {
          const take = Math.min(partSize - pendingBytes, chunk.length - offset);
          pending.push(Buffer.from(chunk.subarray(offset, offset + take)));
          pendingBytes += take;
          offset += take;
          if (pendingBytes === partSize) await flush();
        }
      }
      // Verified before the last part goes up, and long before the object can exist.
      verifier.finish();
      if (pendingBytes > 0 || parts.length === 0) await flush();
      await this.#send('Completing a multipart upload', () =>
        this.#client.send(new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId, MultipartUpload: { Parts: parts } })),
      );
      completed = true;
    } finally {
      if (!completed) {
        try {
          await this.#client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId }));
        } catch (error) {
          // Still invisible: only CompleteMultipartUpload makes an object. A lifecycle rule reclaims it.
          this.#logger.warn({ event: 'blob.abort_failed', sha256: expect.sha256, err: blobStoreError(error, 'Aborting a multipart upload', this.#where) }, 'could not abort an unverified multipart upload');
        }
      }
    }
  }

  /** {@inheritDoc BlobStore.stat} */
  async stat(sha256: string): Promise<BlobInfo | undefined> {
    const key = this.#key(sha256);
    try {
      const head = await this.#client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return { sha256, size: head.ContentLength ?? 0 };
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw blobStoreError(error, 'Looking up an artifact', this.#where);
    }
  }

  /** {@inheritDoc BlobStore.read} */
  async read(sha256: string, range?: ByteRange): Promise<Readable> {
    const key = this.#key(sha256);
    try {
      const object = await this.#client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key, ...(range === undefined ? {} : { Range: `bytes=${range.start}-${range.end}` }) }));
      return object.Body as Readable;
    } catch (error) {
      // As the filesystem store: a missing blob rejects with ENOENT.
      if (isNotFound(error)) throw Object.assign(new Error(`No blob ${sha256} is stored in ${this.#where}.`), { code: 'ENOENT' });
      throw blobStoreError(error, 'Reading an artifact', this.#where);
    }
  }

  /** {@inheritDoc BlobStore.delete} */
  async delete(sha256: string): Promise<void> {
    const key = this.#key(sha256);
    await this.#send('Deleting an artifact', () => this.#client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key })));
  }

  /** A SigV4 presigned GET of the blob, for hosts; its lifetime is capped at SigV4's 7 days. */
  async downloadUrl(sha256: string, options: { ttlSeconds: number; now: Date }): Promise<BlobDownloadUrl> {
    const key = this.#key(sha256);
    const ttl = Math.min(Math.max(1, Math.trunc(options.ttlSeconds)), s3Limits.maxPresignTtlSeconds);
    const url = await this.#send('Presigning a download', () =>
      getSignedUrl(this.#presignClient, new GetObjectCommand({ Bucket: this.bucket, Key: key }), { expiresIn: ttl, signingDate: options.now }),
    );
    // X-Amz-Date is whole seconds: the URL expires ttl seconds after the second it was signed in.
    return { url, expiresAt: new Date(Math.floor(options.now.getTime() / 1000) * 1000 + ttl * 1000) };
  }

  /** HeadBucket, bounded: throws BLOB_STORE_UNREACHABLE, _BUCKET_NOT_FOUND or _ACCESS_DENIED. */
  async ping(): Promise<void> {
    const deadline = deadlineSignal(s3Limits.pingTimeoutMs, undefined, 'Reaching the artifact bucket');
    try {
      await this.#send('Reaching the artifact bucket', () => this.#client.send(new HeadBucketCommand({ Bucket: this.bucket }), { abortSignal: deadline.signal }), { headBucket: true });
    } finally {
      deadline.clear();
    }
  }

  /** Closes the SDK's connections. */
  close(): void {
    this.#client.destroy();
    if (this.#presignClient !== this.#client) this.#presignClient.destroy();
  }

  /** The bucket and prefix only: a serialized store never carries its client or credentials. */
  toJSON(): Record<string, string> {
    return { bucket: this.bucket, prefix: this.prefix };
  }
}
