import { HttpError } from './errors.js';

// An overall deadline as an AbortSignal, built from an AbortController and a timer rather than
// `AbortSignal.any([signal, AbortSignal.timeout(ms)])`: a timeout signal's timer holds it only
// weakly, and inside a composite made by AbortSignal.any it can be garbage-collected before it
// fires, so the deadline silently never comes (nodejs/node#57736, unfixed on Node 20). Here the
// timer holds the controller strongly, and `clear()` releases the timer and the parent's listener.

/** A signal that aborts at a deadline or with its parent, from {@link deadlineSignal}. */
export interface Deadline {
  /** Aborts when the parent aborts (with its reason) or when the time is up (HttpError DEADLINE_EXCEEDED). */
  readonly signal: AbortSignal;
  /** Stops the timer and forgets the parent; call it once the guarded work ended. */
  clear(): void;
}

/**
 * A signal that aborts after `ms`, or as soon as `parent` does.
 *
 * @example
 * ```ts
 * const deadline = deadlineSignal(30_000, options.signal)
 * try { await work(deadline.signal) } finally { deadline.clear() }
 * ```
 */
export function deadlineSignal(ms: number, parent?: AbortSignal, what = 'The request'): Deadline {
  const controller = new AbortController();
  const onParentAbort = (): void => {
    controller.abort(parent?.reason);
  };
  const timer = setTimeout(() => {
    controller.abort(new HttpError('DEADLINE_EXCEEDED', `${what} did not finish within ${ms} ms; it was abandoned. Check the network and the peer, or allow more time.`));
  }, Math.max(0, ms));
  const clear = (): void => {
    clearTimeout(timer);
    parent?.removeEventListener('abort', onParentAbort);
  };
  if (parent?.aborted === true) controller.abort(parent.reason);
  else parent?.addEventListener('abort', onParentAbort, { once: true });
  controller.signal.addEventListener('abort', clear, { once: true });
  return { signal: controller.signal, clear };
}
