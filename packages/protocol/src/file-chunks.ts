import { open } from 'node:fs/promises';

// The one file-reading helper in @drover/protocol (docs/decisions/0003): verifying "at most
// size + 1 bytes" of an artifact on disk is a protocol rule that the CLI and the daemon share.

export const FILE_CHUNK_BYTES = 1024 * 1024; // bytes per read

/**
 * Reads a file in chunks through ONE reused buffer, stopping after `limit` bytes.
 * Each chunk is valid only until the next one is requested: consume it synchronously (hash it,
 * write it) before pulling again. Memory stays flat whatever the file's size.
 *
 * @example
 * ```ts
 * await verifyArtifactStream(readFileChunks(path, { limit: manifest.file.size + 1 }), manifest.file)
 * ```
 */
export async function* readFileChunks(path: string, options: { limit?: number; start?: number; chunkBytes?: number } = {}): AsyncGenerator<Uint8Array> {
  const limit = options.limit ?? Number.POSITIVE_INFINITY;
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.allocUnsafe(options.chunkBytes ?? FILE_CHUNK_BYTES);
    let position = options.start ?? 0;
    let remaining = limit;
    while (remaining > 0) {
      const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, remaining), position);
      if (bytesRead === 0) return;
      position += bytesRead;
      remaining -= bytesRead;
      yield buffer.subarray(0, bytesRead);
    }
  } finally {
    await handle.close();
  }
}
