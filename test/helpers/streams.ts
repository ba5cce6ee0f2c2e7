// Byte streams for the blob store tests: a source cut into chunks, and a stream read to its end.
import { Readable } from 'node:stream';

/** `bytes` as an async stream of `size`-byte chunks (the last one shorter). */
export function chunks(bytes: Uint8Array, size = 1000): AsyncIterable<Uint8Array> {
  const parts: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += size) parts.push(bytes.subarray(i, i + size));
  return Readable.from(parts);
}

/** Every byte of `stream`, in one Buffer. */
export async function readAll(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of stream) parts.push(part);
  return Buffer.concat(parts);
}
