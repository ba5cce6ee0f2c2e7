import type { Readable } from 'node:stream';

/** A stored artifact: content-addressed by its SHA-256. */
export interface BlobInfo {
  /** Lowercase hex SHA-256 of the bytes. */
  sha256: string;
  size: number; // bytes
}

/** An inclusive byte range, as HTTP's `Range: bytes=start-end`. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * Where artifact bytes live. The filesystem ({@link FsBlobStore}) is the default; an object store
 * (S3 and friends) fits behind the same interface.
 *
 * @example
 * const blobs = new FsBlobStore('/var/lib/drover-manager/blobs')
 * await blobs.put(request.raw, manifest.file) // refuses bytes that do not match the manifest
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
  delete(sha256: string): Promise<void>;
}
