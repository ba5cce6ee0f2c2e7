import type { Readable } from 'node:stream';

/** A stored artifact: content-addressed by its SHA-256. */
export interface BlobInfo {
  /** Lowercase hex SHA-256 of the bytes. */
  sha256: string;
  /** Bytes. */
  size: number;
}

/** An inclusive byte range, as HTTP's `Range: bytes=start-end`. */
export interface ByteRange {
  /** The first byte's offset. */
  start: number;
  /** The last byte's offset (included). */
  end: number;
}

/** A URL a host downloads a blob from directly (an object store's presigned GET), and when it stops working. */
export interface BlobDownloadUrl {
  /** An absolute http(s) URL that needs no other credential. */
  url: string;
  /** When the URL stops working. */
  expiresAt: Date;
}

/**
 * Where artifact bytes live, content-addressed by SHA-256: a directory (`blobDir`, by default
 * `<dataDir>/blobs`) unless `ManagerOptions.blobs` gives another; an object store (S3 and friends)
 * fits behind the same interface.
 */
export interface BlobStore {
  /**
   * Stores `source`, checking it against `expect` as it streams in: more bytes than `size` stop
   * the upload at once (ARTIFACT_TOO_LARGE), and nothing becomes visible unless the size and the
   * SHA-256 match (ARTIFACT_TOO_SHORT, ARTIFACT_DIGEST_MISMATCH). Storing bytes already present is
   * a no-op that still consumes and checks `source`.
   */
  put(source: AsyncIterable<Uint8Array>, expect: BlobInfo): Promise<BlobInfo>;
  /** The stored blob's size, or undefined when it is not stored. */
  stat(sha256: string): Promise<BlobInfo | undefined>;
  /** A stream of the blob's bytes (or of `range` of them). */
  read(sha256: string, range?: ByteRange): Promise<Readable>;
  /** Removes the blob; a no-op when it is not stored. */
  delete(sha256: string): Promise<void>;
  /**
   * Optional: a URL hosts fetch the blob from without going through the manager (an object store's
   * presigned GET), valid for `ttlSeconds` from `now`. A store that has it gets update commands
   * carrying that URL and `GET /v1/download` answering 307 to it; one without it is served by the
   * manager itself.
   */
  downloadUrl?(sha256: string, options: { ttlSeconds: number; now: Date }): Promise<BlobDownloadUrl>;
  /** Optional: throws (a ManagerError with a BLOB_STORE_* code) while the store cannot serve, for /readyz. */
  ping?(): Promise<void>;
}
