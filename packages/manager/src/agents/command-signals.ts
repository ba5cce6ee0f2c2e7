// The command channel's wake-ups (issue 16, decision 0041): a check-in that asks to wait
// (`X-Drover-Wait`) and gets no new command is held here until a command for its agent may be
// waiting, its wait ends, the host goes away or the manager stops. The store says when commands
// were written (Store.watchCommands: in-process for SQLite, LISTEN/NOTIFY across replicas for
// PostgreSQL); a held check-in then looks again, so a wake-up is only ever a hint and a missed one
// costs at most one wait.
//
// A check-in takes a ticket before it reads its commands: a notice that comes between that read
// and the hold is kept on the ticket, and the hold then ends at once instead of missing it.

/** Why a held check-in was let go. */
export type HoldEnd = 'signalled' | 'timeout' | 'released';

/** Taken before a check-in reads its commands; held on, or released. */
export interface HoldTicket {
  readonly agentId: string;
  /** Lets the ticket go without holding (the check-in is answered at once). */
  release(): void;
}

interface Ticket extends HoldTicket {
  signalled: boolean;
  finish: ((end: HoldEnd) => void) | undefined;
}

export class CommandSignals {
  /** Check-ins held at most at once; beyond, a check-in that asks to wait is refused (CHANNEL_FULL). */
  readonly maxHeld: number;
  readonly #tickets = new Map<string, Set<Ticket>>();
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

  /** A ticket for a check-in of `agentId` about to read its commands: notices from now on count. */
  ticket(agentId: string): HoldTicket {
    const set = this.#tickets.get(agentId) ?? new Set<Ticket>();
    this.#tickets.set(agentId, set);
    const ticket: Ticket = {
      agentId,
      signalled: false,
      finish: undefined,
      release: () => {
        set.delete(ticket);
        if (set.size === 0 && this.#tickets.get(agentId) === set) this.#tickets.delete(agentId);
      },
    };
    set.add(ticket);
    return ticket;
  }

  /**
   * Holds the check-in of `held` until a command for its agent may be waiting (at once if a notice
   * came since the ticket was taken), `ms` passes, or `until` aborts (the host went away); undefined
   * when full or closed (answer at once instead; the ticket is released).
   */
  hold(held: HoldTicket, ms: number, until: AbortSignal): Promise<HoldEnd> | undefined {
    const ticket = held as Ticket;
    if (this.full || until.aborted) {
      ticket.release();
      return undefined;
    }
    if (ticket.signalled) {
      ticket.release();
      return Promise.resolve('signalled');
    }
    this.#held += 1;
    return new Promise<HoldEnd>((resolve) => {
      const finish = (end: HoldEnd): void => {
        if (ticket.finish === undefined) return;
        ticket.finish = undefined;
        clearTimeout(timer);
        until.removeEventListener('abort', onAbort);
        ticket.release();
        this.#held -= 1;
        resolve(end);
      };
      const onAbort = (): void => {
        finish('released');
      };
      const timer = setTimeout(() => {
        finish('timeout');
      }, ms);
      ticket.finish = finish;
      until.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Commands were written for these agents: their check-ins look again. */
  notify(agentIds: Iterable<string>): void {
    for (const agentId of agentIds) for (const ticket of [...(this.#tickets.get(agentId) ?? [])]) this.#signal(ticket, 'signalled');
  }

  /** Every check-in looks again (wake-ups may have been missed: a lost LISTEN connection). */
  wakeAll(): void {
    for (const set of [...this.#tickets.values()]) for (const ticket of [...set]) this.#signal(ticket, 'signalled');
  }

  /** Lets every held check-in go and holds no more (the manager is stopping). */
  close(): void {
    this.#closed = true;
    for (const set of [...this.#tickets.values()]) for (const ticket of [...set]) this.#signal(ticket, 'released');
  }

  #signal(ticket: Ticket, end: HoldEnd): void {
    ticket.signalled = true;
    ticket.finish?.(end);
  }
}
