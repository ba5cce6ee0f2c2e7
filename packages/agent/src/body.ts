import type { Readable } from 'node:stream';
import { limits } from './config.js';
import type { AgentRequest } from './response.js';

// What an adapter read: the body (at most the limit), or why it stopped. Undefined: the client went away.
export type BodyRead = Pick<AgentRequest, 'body' | 'bodyTooLarge' | 'bodyTimedOut'>;

// endless data: a declared length over the limit is refused before a byte is read.
export function declaredTooLarge(contentLength: string | null | undefined): boolean {
  if (contentLength === undefined || contentLength === null) return false;
  const length = Number(contentLength);
  return !Number.isFinite(length) || length > limits.maxBodyBytes;
}

// Collects chunks up to the limit; `push` answers false once the limit is passed.
class Collector {
  readonly #chunks: Uint8Array[] = [];
  #size = 0;

  push(chunk: Uint8Array): boolean {
    this.#size += chunk.byteLength;
    if (this.#size > limits.maxBodyBytes) return false;
    this.#chunks.push(chunk);
    return true;
  }

  bytes(): Uint8Array {
    if (this.#chunks.length === 1 && this.#chunks[0] !== undefined) return this.#chunks[0];
    const out = new Uint8Array(this.#size);
    let offset = 0;
    for (const chunk of this.#chunks) {
      out.set(chunk, offset);
      offset += chunk.byteLength;
    }
    return out;
  }
}

function asBytes(chunk: unknown): Uint8Array {
  if (chunk instanceof Uint8Array) return chunk;
  return new TextEncoder().encode(String(chunk));
}

// Reads a Node request stream up to the limit. Over the limit, reading stops (the stream is paused,
// not destroyed, so the 400 can still be written on the same socket; the response then closes it).
export function readNodeBody(stream: Readable, contentLength: string | undefined): Promise<BodyRead | undefined> {
  if (declaredTooLarge(contentLength)) return Promise.resolve({ bodyTooLarge: true });
  if (stream.readableEnded) return Promise.resolve({});
  return new Promise((resolve) => {
    const collector = new Collector();
    const finish = (result: BodyRead | undefined): void => {
      clearTimeout(timer);
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onGone);
      stream.off('close', onGone);
      resolve(result);
    };
    const onData = (chunk: unknown): void => {
      if (collector.push(asBytes(chunk))) return;
      stream.pause();
      finish({ bodyTooLarge: true });
    };
    const onEnd = (): void => {
      const bytes = collector.bytes();
      finish(bytes.byteLength === 0 ? {} : { body: bytes });
    };
    const onGone = (): void => {
      finish(undefined);
    };
    // slow loris: a body trickling in forever would hold the request open.
    const timer = setTimeout(() => {
      stream.pause();
      finish({ bodyTimedOut: true });
    }, limits.bodyReadTimeoutMs);
    stream.on('data', onData);
    stream.once('end', onEnd);
    stream.once('error', onGone);
    stream.once('close', onGone);
  });
}

// Reads a Web `Request` body up to the limit; over it, the stream is cancelled.
export async function readWebBody(request: Request): Promise<BodyRead | undefined> {
  if (request.body === null) return {};
  if (declaredTooLarge(request.headers.get('content-length'))) {
    await request.body.cancel().catch(() => undefined);
    return { bodyTooLarge: true };
  }
  const reader = request.body.getReader();
  const collector = new Collector();
  let timer: ReturnType<typeof setTimeout> | undefined;
  // slow loris: a body trickling in forever would hold the request open.
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => {
      resolve('timeout');
    }, limits.bodyReadTimeoutMs);
  });
  try {
    for (;;) {
      const next = await Promise.race([reader.read(), timeout]);
      if (next === 'timeout') {
        void reader.cancel().catch(() => undefined);
        return { bodyTimedOut: true };
      }
      if (next.done) break;
      if (!collector.push(asBytes(next.value))) {
        void reader.cancel().catch(() => undefined);
        return { bodyTooLarge: true };
      }
    }
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
  }
  const bytes = collector.bytes();
  return bytes.byteLength === 0 ? {} : { body: bytes };
}
