import type { Actor, ManagerContext } from '../context.js';
import { managerLimits } from '../config.js';
import { ManagerError } from '../errors.js';
import { hashSecret, newSecret } from '../secrets.js';
import type { EnrollmentTokenRecord } from '../store/records.js';

export interface CreateEnrollmentTokenInput {
  /** How many enrollments the token allows (default 1). */
  seats?: number | undefined;
  /** Seconds until it expires (default 24 h). */
  expiresInSeconds?: number | undefined;
  note?: string | undefined;
}

/** A new enrollment token: the secret (shown once) and its stored record. */
export interface CreatedEnrollmentToken {
  token: string;
  record: EnrollmentTokenRecord;
}

/**
 * Creates an enrollment token with seats and an expiry. Only its hash is stored: the token is
 * returned once, to be handed to the hosts that should enroll.
 */
export async function createEnrollmentToken(ctx: ManagerContext, input: CreateEnrollmentTokenInput, actor: Actor): Promise<CreatedEnrollmentToken> {
  const seats = input.seats ?? 1;
  const ttl = input.expiresInSeconds ?? managerLimits.enrollmentTokenDefaultTtlSeconds;
  if (!Number.isSafeInteger(seats) || seats < 1 || seats > managerLimits.enrollmentTokenMaxSeats) {
    throw new ManagerError('BAD_REQUEST', `seats must be a whole number from 1 to ${managerLimits.enrollmentTokenMaxSeats}.`);
  }
  if (!Number.isSafeInteger(ttl) || ttl < 1 || ttl > managerLimits.enrollmentTokenMaxTtlSeconds) {
    throw new ManagerError('BAD_REQUEST', `expiresInSeconds must be a whole number from 1 to ${managerLimits.enrollmentTokenMaxTtlSeconds}.`);
  }
  const token = newSecret();
  const now = ctx.now();
  const tokenHash = hashSecret(token);
  const expiresAt = new Date(now.getTime() + ttl * 1000);
  const record = await ctx.store.createEnrollmentToken(
    { tokenHash, seats, createdAt: now, expiresAt, createdBy: actor.name, note: input.note },
    [
      ctx.audit.entry({
        event: 'enrollment_token.created',
        actor: actor.name,
        ...(actor.tokenId === undefined ? {} : { tokenId: actor.tokenId }),
        outcome: 'success',
        details: { enrollmentTokenId: tokenHash.slice(0, 16), seats, expiresAt: expiresAt.toISOString(), ...(input.note === undefined ? {} : { note: input.note }) },
      }),
    ],
  );
  await ctx.audit.flush();
  return { token, record };
}

/** Revokes an enrollment token by id: later enrollments with it get 403 ENROLLMENT_TOKEN_REVOKED. */
export async function revokeEnrollmentToken(ctx: ManagerContext, id: string, actor: Actor): Promise<void> {
  const audit = ctx.audit.entry({
    event: 'enrollment_token.revoked',
    actor: actor.name,
    ...(actor.tokenId === undefined ? {} : { tokenId: actor.tokenId }),
    outcome: 'success',
    details: { enrollmentTokenId: id },
  });
  if (!(await ctx.store.revokeEnrollmentToken(id, ctx.now(), [audit]))) {
    throw new ManagerError('ENROLLMENT_TOKEN_NOT_FOUND', `No enrollment token has id ${/^[0-9a-f]{16}$/.test(id) ? id : '(the given id)'}. List them with GET /v1/enrollment-tokens.`);
  }
  await ctx.audit.flush();
}
