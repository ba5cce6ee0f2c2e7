// The command channel's wake-ups (issue 16, decision 0041): a check-in that asks to wait
// (`X-Drover-Wait`) and gets no command is held here until a command for its agent may be
// waiting, its wait ends, the host goes away or the manager stops. The store says when commands
// were written (Store.watchCommands: in-process for SQLite, LISTEN/NOTIFY across replicas for
// PostgreSQL); a held check-in then looks again, so a wake-up is only ever a hint and a missed one
// costs at most one wait.

/** Why a held check-in was let go. */
export type HoldEnd = 'signalled' | 'timeout' | 'released';

export class CommandSignals {
  /** Check-ins held at most at once; beyond, a check-in that asks to wait is refused (CHANNEL_FULL). */
  readonly maxHeld: number;
  readonly #waiters = new Map<string, Set<(end: HoldEnd) => void>>();
  #held = 0;
  #closed = false;

  constructor(maxHeld: number) {
    this.maxHeld = maxHeld;
  }

  /** Check-ins held now. */
  get held(): number {
    return this.#held;
  }

  /** Whether one more check-in can be held. */
  get full(): boolean {
    return this.#closed || this.#held >= this.maxHeld;
  }

  /**
   * Holds a check-in of `agentId` until a command for it may be waiting, `ms` passes, or `until`
   * aborts (the host went away); undefined when full or closed (answer at once instead).
   */
  hold(agentId: string, ms: number, until: AbortSignal): Promise<HoldEnd> | undefined {
    if (this.full || until.aborted) return undefined;
    this.#held += 1;
    return new Promise<HoldEnd>((resolve) => {
      const set = this.#waiters.get(agentId) ?? new Set();
      this.#waiters.set(agentId, set);
      const finish = (end: HoldEnd): void => {
        clearTimeout(timer);
        until.removeEventListener('abort', onAbort);
        set.delete(finish);
        if (set.size === 0 && this.#waiters.get(agentId) === set) this.#waiters.delete(agentId);
        this.#held -= 1;
        resolve(end);
      };
      const onAbort = (): void => {
        finish('released');
      };
      const timer = setTimeout(() => {
        finish('timeout');
      }, ms);
      set.add(finish);
      until.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Commands were written for these agents: their held check-ins look again. */
  notify(agentIds: Iterable<string>): void {
    for (const agentId of agentIds) for (const finish of [...(this.#waiters.get(agentId) ?? [])]) finish('signalled');
  }

  /** Every held check-in looks again (wake-ups may have been missed: a lost LISTEN connection). */
  wakeAll(): void {
    for (const set of [...this.#waiters.values()]) for (const finish of [...set]) finish('signalled');
  }

  /** Lets every held check-in go and holds no more (the manager is stopping). */
  close(): void {
    this.#closed = true;
    for (const set of [...this.#waiters.values()]) for (const finish of [...set]) finish('released');
  }
}
