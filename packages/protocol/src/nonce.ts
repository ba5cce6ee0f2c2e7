import { randomBytes } from 'node:crypto';
import { fromBase64Url, toBase64Url } from './bytes.js';
import { limits } from './config.js';
import { pae } from './dsse.js';
import type { Ed25519PublicKey, Ed25519Signer } from './ed25519.js';
import { NonceError } from './errors.js';
import { NoncePayloadSchema } from './schemas/commands.js';
import type { NoncePayload } from './schemas/commands.js';
import { matchesSchema } from './validate.js';
import { compareVersions, isUpgrade } from './version.js';

/** The payload type bound into an update nonce's signature (through PAE), so no other signed document passes as a nonce. */
export const NONCE_PAYLOAD_TYPE = 'application/vnd.drover.nonce+json';

/** What {@link issueNonce} signs: which host may make which move, for which deployment. */
export interface IssueNonceInput {
  /** The agent the nonce is issued to. */
  agentId: string;
  /** The host's machine id: 64 lowercase hex. */
  machineId: string;
  /** The deployment the command belongs to. */
  deploymentId: string;
  /** `agent` or `daemon`. */
  artifact: string;
  /** The version the host runs now. */
  fromVersion: string;
  /** The version the command installs. */
  toVersion: string;
  /** True when the move is a signed rollback (to a version not above `fromVersion`). */
  rollback?: boolean;
  /** Seconds the nonce stays valid (default one hour). */
  ttlSeconds?: number;
  /** The issue time; default now. */
  now?: Date;
  /** Defaults to 128 random bits, base64url. */
  nonceId?: string;
}

/**
 * Issues an update nonce: `base64url(payload) "." base64url(sig)`, the signature an Ed25519 one
 * by the manager key over PAE(NONCE_PAYLOAD_TYPE, payload).
 *
 * @param key - the manager key the daemons pin
 * @returns the compact token, and the payload it carries
 */
export function issueNonce(input: IssueNonceInput, key: Ed25519Signer): { token: string; payload: NoncePayload } {
  const iat = Math.floor((input.now ?? new Date()).getTime() / 1000);
  const payload: NoncePayload = {
    v: 1,
    nonceId: input.nonceId ?? randomBytes(16).toString('base64url'),
    agentId: input.agentId,
    machineId: input.machineId,
    deploymentId: input.deploymentId,
    artifact: input.artifact,
    fromVersion: input.fromVersion,
    toVersion: input.toVersion,
    rollback: input.rollback ?? false,
    iat,
    exp: iat + (input.ttlSeconds ?? limits.nonceDefaultTtlSeconds),
  };
  if (!matchesSchema(NoncePayloadSchema, payload)) {
    throw new NonceError('NONCE_MALFORMED', 'The nonce to issue is malformed: check the agent id, the machine id (64 lowercase hex) and the versions.');
  }
  const body = new TextEncoder().encode(JSON.stringify(payload));
  const sig = key.sign(pae(NONCE_PAYLOAD_TYPE, body));
  return { token: `${toBase64Url(body)}.${toBase64Url(sig)}`, payload };
}

function split(token: string): { body: Uint8Array; sig: Uint8Array } {
  if (token.length > limits.nonceMaxLength) throw new NonceError('NONCE_MALFORMED', 'The update nonce is too long to be a drover nonce.');
  const parts = token.split('.');
  const body = parts.length === 2 && parts[0] !== undefined ? fromBase64Url(parts[0]) : undefined;
  const sig = parts.length === 2 && parts[1] !== undefined ? fromBase64Url(parts[1]) : undefined;
  if (body === undefined || sig === undefined) throw new NonceError('NONCE_MALFORMED', 'The update nonce is not `base64url(payload).base64url(signature)`.');
  return { body, sig };
}

function parsePayload(body: Uint8Array): NoncePayload {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body));
  } catch (error) {
    throw new NonceError('NONCE_MALFORMED', 'The update nonce payload is not UTF-8 JSON.', { cause: error });
  }
  if (!matchesSchema(NoncePayloadSchema, value)) throw new NonceError('NONCE_MALFORMED', 'The update nonce payload does not have the drover nonce fields.');
  return value;
}

/**
 * Reads a nonce's payload WITHOUT verifying it: only for looking up what the token claims (e.g.
 * which deployment it names) before a full check. Never act on the result alone.
 */
export function readNonceUnverified(token: string): NoncePayload {
  return parsePayload(split(token).body);
}

/** What a daemon knows that a nonce must agree with; see {@link verifyNonce}. */
export interface NonceExpectations {
  /** The pinned manager keys; the nonce must be signed by one of them. */
  managerKeys: readonly Ed25519PublicKey[];
  /** This host's agent id. */
  agentId: string;
  /** This host's machine id (64 hex). */
  machineId: string;
  /** The version of the artifact running now. */
  runningVersion: string;
  /** When given, the nonce must name this artifact. */
  artifact?: string;
  /** Caller-supplied: true when this nonce id was used before (the daemon persists them). */
  isUsed: (nonceId: string) => boolean;
  /** The time to check `iat` and `exp` against; default now. */
  now?: Date;
  /** Clock difference tolerated before `iat`, in seconds (default 60). */
  skewSeconds?: number;
}

/**
 * Verifies an update nonce: signed by a pinned manager key, issued to this agent and machine,
 * within its validity, an upgrade unless a rollback, never used before.
 *
 * @returns the verified payload
 * @throws NonceError with the code of the check that failed (docs/errors.md)
 */
export function verifyNonce(token: string, expect: NonceExpectations): NoncePayload {
  const { body, sig } = split(token);
  const message = pae(NONCE_PAYLOAD_TYPE, body);
  // A nonce not signed by the pinned manager key could come from anyone on the path.
  if (!expect.managerKeys.some((key) => key.verify(message, sig))) {
    throw new NonceError('NONCE_SIGNATURE_INVALID', 'The update nonce is not signed by the pinned manager key. The command is refused.');
  }
  const payload = parsePayload(body);
  // stolen command: a nonce issued to another host is useless here.
  if (payload.agentId !== expect.agentId) throw new NonceError('NONCE_WRONG_AGENT', 'The update nonce was issued to another agent.');
  if (payload.machineId !== expect.machineId.toLowerCase()) throw new NonceError('NONCE_WRONG_MACHINE', 'The update nonce was issued for another machine.');
  if (expect.artifact !== undefined && payload.artifact !== expect.artifact) {
    throw new NonceError('NONCE_MALFORMED', `The update nonce is for artifact "${payload.artifact}", not "${expect.artifact}".`);
  }
  const now = Math.floor((expect.now ?? new Date()).getTime() / 1000);
  const skew = expect.skewSeconds ?? limits.nonceClockSkewSeconds;
  if (now < payload.iat - skew) throw new NonceError('NONCE_NOT_YET_VALID', 'The update nonce was issued in the future: check the clocks of the manager and this host.');
  if (now > payload.exp) throw new NonceError('NONCE_EXPIRED', `The update nonce expired at ${new Date(payload.exp * 1000).toISOString()}; the manager will issue a new one.`);
  // downgrade: a nonce never moves a host down unless it is a signed rollback.
  if (!payload.rollback && !isUpgrade(expect.runningVersion, payload.toVersion)) {
    throw new NonceError('NONCE_DOWNGRADE_REFUSED', `The update nonce moves from ${expect.runningVersion} to ${payload.toVersion}, which is not an upgrade, and it is not a rollback.`);
  }
  // A rollback is a downgrade the manager signed for one situation: the host running fromVersion.
  // A stale one (the host has moved on since) must not take it down from wherever it is now.
  if (payload.rollback && compareVersions(payload.fromVersion, expect.runningVersion) !== 0) {
    throw new NonceError('NONCE_DOWNGRADE_REFUSED', `The rollback nonce was issued for a host running ${payload.fromVersion}, but ${expect.runningVersion} is running: it is stale and refused.`);
  }
  // replay: each nonce is single use.
  if (expect.isUsed(payload.nonceId)) throw new NonceError('NONCE_REPLAYED', 'This update nonce was used before; a replayed command is refused.');
  return payload;
}
