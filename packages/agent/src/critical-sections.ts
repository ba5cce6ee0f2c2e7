import { AsyncLocalStorage } from 'node:async_hooks';
import { sanitizeReason } from '@drover/protocol/internal';
import { limits } from './config.js';
import { AgentError } from './errors.js';

const MAX_NAME_LENGTH = limits.criticalNameMaxLength;

// Counts the critical sections in flight. The agent is busy while any runs; once closed (the
// agent is draining) new sections are refused, except those nested in a section still running,
// since the drain is waiting for that outer section to finish and refusing its inner steps would
// break the very work being waited for.
export class CriticalSections {
  readonly #active = new Map<number, string>(); // id -> name, in start order
  readonly #idleWaiters = new Set<() => void>();
  readonly #context = new AsyncLocalStorage<number>(); // id of the enclosing section
  #nextId = 0;
  #closed = false;

  // async, yet everything up to the first await runs synchronously: the section counts as busy
  // from the moment `critical()` is called, and a refusal is a rejected promise, never a throw.
  async run<T>(name: string, fn: () => T | Promise<T>): Promise<T> {
    if (typeof name !== 'string' || name.length === 0 || name.length > MAX_NAME_LENGTH) {
      throw new AgentError('CRITICAL_SECTION_INVALID', `A critical section needs a name of 1 to ${MAX_NAME_LENGTH} characters; pass one to agent.critical(name, fn).`);
    }
    if (typeof fn !== 'function') {
      throw new AgentError('CRITICAL_SECTION_INVALID', 'agent.critical(name, fn) needs a function to run as its second argument.');
    }
    const parent = this.#context.getStore();
    if (this.#closed && (parent === undefined || !this.#active.has(parent))) {
      throw new AgentError('AGENT_SHUTTING_DOWN', `The agent is shutting down and accepts no new work; critical section "${sanitizeReason(name)}" was not started.`);
    }
    const id = this.#nextId++;
    // Names reach 503 bodies and log lines: no control characters (log injection).
    this.#active.set(id, sanitizeReason(name));
    try {
      return await this.#context.run(id, fn);
    } finally {
      this.#leave(id);
    }
  }

  busy(): boolean {
    return this.#active.size > 0;
  }

  // Distinct names of the sections running, oldest first.
  names(): string[] {
    return [...new Set(this.#active.values())];
  }

  // Refuses new (non-nested) sections from now on.
  close(): void {
    this.#closed = true;
  }

  get closed(): boolean {
    return this.#closed;
  }

  // Resolves true once no section runs, or false when `timeoutMs` passes first.
  idle(timeoutMs: number): Promise<boolean> {
    if (this.#active.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#idleWaiters.delete(done);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.#idleWaiters.delete(done);
        resolve(false);
      }, timeoutMs);
      this.#idleWaiters.add(done);
    });
  }

  #leave(id: number): void {
    this.#active.delete(id);
    if (this.#active.size > 0) return;
    for (const waiter of [...this.#idleWaiters]) waiter();
  }
}
