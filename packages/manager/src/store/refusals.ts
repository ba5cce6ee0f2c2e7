// What a store's transaction throws to roll itself back when the change is refused: each store
// catches it after the rollback and answers the refusal as its result (Store.recordCheckin,
// Store.createDeployment).

import type { CheckinWriteResult } from './records.js';

/** A check-in's nonce was consumed by someone else first: nothing of the check-in is written. */
export class NonceReplayed extends Error {
  constructor(
    readonly nonceId: string,
    readonly commandId: string,
  ) {
    super('nonce already consumed');
  }
}

/** What Store.recordCheckin answers for `error` when it is a NonceReplayed; rethrows anything else. */
export function replayedCheckin(error: unknown): CheckinWriteResult {
  if (error instanceof NonceReplayed) return { ok: false, reason: 'nonce_replayed', nonceId: error.nonceId, commandId: error.commandId };
  throw error;
}

/** Another deployment of the artifact is active: nothing of the new one (or its superseding) is written. */
export class DeploymentActive extends Error {
  constructor(readonly active: string) {
    super('another deployment of this artifact is active');
  }
}
