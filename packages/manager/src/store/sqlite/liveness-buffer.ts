// The write buffer of the plain check-in (no acks, no results), which only refreshes an agent's
// liveness and health: those writes are kept per agent (the latest wins) and written in one
// transaction every LIVENESS_FLUSH_MS, or at once when LIVENESS_FLUSH_COUNT agents are waiting. An
// autocommit UPDATE costs ~11 us (its own WAL commit), a batched one ~1 us: this is most of the
// check-in path's SQLite time. The store writes the buffer out before any other call, so no reader
// ever sees stale state, and on close. A crash loses at most the last LIVENESS_FLUSH_MS of
// liveness, which the next check-ins restore.

import type { CheckinWrite } from '../records.js';

export const LIVENESS_FLUSH_MS = 50; // milliseconds a buffered liveness write may wait
export const LIVENESS_FLUSH_COUNT = 1000; // buffered agents that trigger an immediate write

/** Liveness writes per agent, handed to `write` as one batch on a timer, when full, or on `flush()`. */
export class LivenessBuffer<Params> {
  readonly #pending = new Map<string, Params>();
  readonly #write: (batch: readonly Params[]) => void;
  #timer: NodeJS.Timeout | undefined;

  /** `write` applies a batch in one transaction; it runs synchronously inside `add` and `flush`. */
  constructor(write: (batch: readonly Params[]) => void) {
    this.#write = write;
  }

  /** Keeps the agent's latest liveness write; writes the batch out now when it is full. */
  add(agentId: string, params: Params): void {
    this.#pending.set(agentId, params);
    if (this.#pending.size >= LIVENESS_FLUSH_COUNT) {
      this.flush();
      return;
    }
    this.#timer ??= setTimeout(() => {
      this.#timer = undefined;
      try {
        this.flush();
      } catch {
        // The batch is lost (liveness only); the next check-ins write it again.
      }
    }, LIVENESS_FLUSH_MS).unref();
  }

  /** Writes out what is waiting (nothing when empty) and cancels the timer. */
  flush(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#pending.size === 0) return;
    const batch = [...this.#pending.values()];
    this.#pending.clear();
    this.#write(batch);
  }
}

/** What a plain check-in writes of an agent, in the order of both stores' UPDATE: at, versions, health, update, inventory (null: keep), agent id. */
export type LivenessParams = [number, string, string, string, string | null, string | null, string];

/** The liveness columns of a check-in (the SQLite and PostgreSQL stores buffer exactly these). */
export function livenessParams(write: CheckinWrite): LivenessParams {
  return [
    write.at.getTime(),
    write.agentVersion,
    write.daemonVersion,
    JSON.stringify(write.health),
    write.update === undefined ? null : JSON.stringify(write.update),
    write.inventory === undefined ? null : JSON.stringify(write.inventory),
    write.agentId,
  ];
}
