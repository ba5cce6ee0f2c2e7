import type { FileHandle } from 'node:fs/promises';
import type { ArtifactVerifier } from '@drover/protocol';

// Writes a download into its .part file while hashing it, so that verification is done when the
// last byte is on disk (issue 16: no second pass over the file after the download).
//
// the bytes verified are the bytes installed: each incoming chunk is COPIED into one of two buffers
// this writer owns, the copy is hashed, and that same buffer region is what goes to write(2). Nothing
// else holds those buffers, so no later change to a network buffer can make the file differ from
// what was hashed. The file itself is droverd's own: staging/ under the 0700 state directory, one
// droverd per state directory (host/lock.ts); after the final fsync the machine moves this very file
// (same inode) into releases/ (releases/store.ts install).
//
// Speed: one write in flight while the next buffer fills, writes of up to `bufferBytes`, and an
// fdatasync(2) started every `syncEveryBytes` in the background, so the final fsync has little left
// to flush. Memory: the two buffers, whatever the speed of the network or the disk.

/** Options of a {@link PartWriter}: the buffer size and how often written data is flushed to disk. */
export interface PartWriterOptions {
  bufferBytes: number; // bytes: each of the two buffers, and the largest single write
  syncEveryBytes: number; // bytes written between two background fdatasync(2)
}

/** Hashes and writes the chunks of one download request into an open .part file, in order. */
export class PartWriter {
  readonly #handle: FileHandle;
  readonly #verifier: ArtifactVerifier;
  readonly #options: PartWriterOptions;
  readonly #buffers: [Buffer, Buffer];
  #current = 0;
  #fill = 0; // bytes of #buffers[#current] hashed and waiting to be written
  #writing: Promise<void> = Promise.resolve();
  #writeInFlight = false;
  #flushWhenDone = false;
  #syncing: Promise<void> = Promise.resolve();
  #unsynced = 0;
  // The first failure of a background write or fdatasync: thrown at the next call, never unhandled.
  #failure: { error: unknown } | undefined;

  constructor(handle: FileHandle, verifier: ArtifactVerifier, options: PartWriterOptions) {
    this.#handle = handle;
    this.#verifier = verifier;
    this.#options = options;
    this.#buffers = [Buffer.allocUnsafe(options.bufferBytes), Buffer.allocUnsafe(options.bufferBytes)];
  }

  /**
   * Copies, hashes and queues `chunk`. Throws the verifier's ARTIFACT_TOO_LARGE before a byte past
   * the signed size is queued (endless data), or the disk's error of an earlier write.
   */
  async write(chunk: Uint8Array): Promise<void> {
    this.#throwFailure();
    // More data came: the caller is not waiting for the network any more (see flushIfIdle).
    this.#flushWhenDone = false;
    for (let offset = 0; offset < chunk.length; ) {
      const buffer = this.#buffer();
      const n = Math.min(buffer.length - this.#fill, chunk.length - offset);
      buffer.set(chunk.subarray(offset, offset + n), this.#fill);
      // Counted only once the verifier took it: a refused piece is never written.
      this.#verifier.update(buffer.subarray(this.#fill, this.#fill + n));
      this.#fill += n;
      offset += n;
      if (this.#fill === buffer.length) await this.flush();
    }
  }

  /**
   * The caller has caught up with the network: write what is buffered now, or when the write in
   * flight ends if no more data came meanwhile. A slow or paused download lands on disk as it
   * arrives (a resume starts from there), while a fast one keeps filling the buffer behind the
   * write in flight, so writes stay large.
   */
  flushIfIdle(): void {
    this.#throwFailure();
    if (this.#fill === 0) return;
    if (this.#writeInFlight) this.#flushWhenDone = true;
    else this.#startWrite();
  }

  /** Starts writing what is buffered, once the write in flight ended (one at a time: the file stays in order). */
  async flush(): Promise<void> {
    await this.#idle();
    this.#throwFailure();
    if (this.#fill > 0) this.#startWrite();
  }

  /** Writes what is buffered, waits for every write, then fsyncs the file when `sync`. Throws the first disk error. */
  async finish(sync: boolean): Promise<void> {
    await this.flush();
    await this.#idle();
    await this.#syncing;
    this.#throwFailure();
    if (sync) await this.#handle.sync();
  }

  /** Waits for the writes and syncs in flight and swallows their errors: before closing after a failure. */
  async settle(): Promise<void> {
    await this.#idle();
    await this.#syncing;
  }

  async #idle(): Promise<void> {
    // A write's end may start the next one (flushIfIdle): wait until none is in flight.
    while (this.#writeInFlight) await this.#writing;
  }

  #startWrite(): void {
    const buffer = this.#buffer();
    const length = this.#fill;
    this.#current = 1 - this.#current;
    this.#fill = 0;
    this.#writeInFlight = true;
    this.#flushWhenDone = false;
    this.#writing = this.#writeAll(buffer, length).then(
      () => {
        this.#writeInFlight = false;
        this.#unsynced += length;
        if (this.#unsynced >= this.#options.syncEveryBytes) {
          this.#unsynced = 0;
          // One fdatasync at a time; it does not hold up the next write.
          this.#syncing = this.#syncing.then(() => this.#handle.datasync()).catch((error: unknown) => {
            this.#fail(error);
          });
        }
        if (this.#flushWhenDone && this.#fill > 0) this.#startWrite();
      },
      (error: unknown) => {
        this.#writeInFlight = false;
        this.#fail(error);
      },
    );
  }

  async #writeAll(buffer: Buffer, length: number): Promise<void> {
    // write(2) may write less than asked: go on from where it stopped.
    for (let done = 0; done < length; ) {
      const { bytesWritten } = await this.#handle.write(buffer, done, length - done);
      if (bytesWritten <= 0) throw Object.assign(new Error('write(2) wrote nothing to the .part file'), { code: 'EIO' });
      done += bytesWritten;
    }
  }

  #buffer(): Buffer {
    return this.#current === 0 ? this.#buffers[0] : this.#buffers[1];
  }

  #fail(error: unknown): void {
    this.#failure ??= { error };
  }

  #throwFailure(): void {
    if (this.#failure !== undefined) throw this.#failure.error;
  }
}
