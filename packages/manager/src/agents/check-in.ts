import { NONCE_PAYLOAD_TYPE, compareVersions, isBelow, pae, readNonceUnverified } from '@drover/protocol';
import { fromBase64Url } from '@drover/protocol/internal';
import type { CheckinRequest, CheckinResponse, CheckinUpgradeRequired, CommandResult, CommandStub, Ed25519PublicKey, NonceErrorCode, NoncePayload } from '@drover/protocol';
import type { ManagerContext } from '../context.js';
import { requireEnrolledMachine } from './credentials.js';
import { managerLimits } from '../config.js';
import { ManagerError } from '../errors.js';
import type { ManagerErrorCode } from '../errors.js';
import { presentedSha256 } from '../presented.js';
import type { AgentIdentity, CheckinResultWrite, CommandRecord, PendingAuditRecord } from '../store/records.js';

// The check-in (DESIGN.md "Check-in"): the daemon reports its state, acks the commands it has
// persisted and reports results; the manager answers with every command not yet acked
// (at-least-once delivery; the daemon de-duplicates by command id).
//
// A result that completes an update carries the command's update nonce, and the manager accepts
// it only if the nonce is one it signed and issued to this agent for this command (and so this
// deployment), not consumed before, and, for a success, the agent now reports the target version.
// A refused result refuses the whole check-in (nothing of it is written) with 403/409 and an
// audit record. A daemon whose earlier delivery of a result got lost on the way back sees 409
// NONCE_REPLAYED for the retry: the manager has the result already and the daemon drops it.

export interface CheckinHeaders {
  machineId: string;
  agentVersion: string;
  daemonVersion: string;
}

/**
 * A check-in's answer; `newCommands`: how many of its commands the daemon does not hold yet (the
 * others were delivered before and are kept, not acked, by a daemon busy with another update: the
 * command channel holds a check-in that has none).
 */
export type CheckinOutcome = ({ status: 200; body: CheckinResponse } | { status: 426; body: CheckinUpgradeRequired }) & { newCommands: number };

/** Outcomes after which an update is over: its nonce is spent. `deferred` is progress only. */
const FINAL_OUTCOMES: ReadonlySet<string> = new Set(['succeeded', 'failed', 'rolled_back', 'rejected']);

function signedBy(token: string, keys: readonly Ed25519PublicKey[]): boolean {
  const parts = token.split('.');
  const body = parts.length === 2 && parts[0] !== undefined ? fromBase64Url(parts[0]) : undefined;
  const sig = parts.length === 2 && parts[1] !== undefined ? fromBase64Url(parts[1]) : undefined;
  if (body === undefined || sig === undefined) return false;
  const message = pae(NONCE_PAYLOAD_TYPE, body);
  return keys.some((key) => key.verify(message, sig));
}

function sameVersion(a: string, b: string): boolean {
  try {
    return compareVersions(a, b) === 0;
  } catch {
    return false;
  }
}

function toStub(command: CommandRecord): CommandStub {
  return command.body as unknown as CommandStub;
}

// `nonce` is set only once the manager's signature on it is verified, and `command` only for a
// command of this agent: anything else in a refused result is the client's, and reaches the audit
// log only as a hash.
class ResultRefused extends Error {
  constructor(
    readonly code: ManagerErrorCode | NonceErrorCode,
    readonly why: string,
    readonly result: CommandResult,
    readonly nonce: NoncePayload | undefined,
    readonly command: CommandRecord | undefined,
  ) {
    super(why);
  }
}

/** Checks one result; returns what to write, or throws ResultRefused. */
async function checkResult(ctx: ManagerContext, agent: AgentIdentity, headers: CheckinHeaders, result: CommandResult): Promise<CheckinResultWrite & { deploymentId: string | undefined }> {
  const command = await ctx.store.getCommand(result.commandId);
  // A result for a command this agent was never sent is refused: it could only be a forgery or a mix-up.
  if (command?.agentId !== agent.id) {
    throw new ResultRefused('COMMAND_UNKNOWN', `Command ${result.commandId} was not issued to this agent; drop this result.`, result, undefined, undefined);
  }
  const write = { commandId: result.commandId, outcome: result.outcome, detail: result.detail, deploymentId: command.deploymentId };
  if (command.type !== 'update' || !FINAL_OUTCOMES.has(result.outcome)) return write;

  const token = result.nonce;
  if (token === undefined) {
    throw new ResultRefused('NONCE_MISSING', `The result of update command ${command.id} must carry the command's update nonce.`, result, undefined, command);
  }
  // Read unverified to find the nonce; trusted (and audited) only once its signature checks out.
  let claimed: NoncePayload;
  try {
    claimed = readNonceUnverified(token);
  } catch {
    throw new ResultRefused('NONCE_MALFORMED', 'The update nonce in the result is not a drover nonce.', result, undefined, command);
  }
  const issued = await ctx.store.getNonce(claimed.nonceId);
  // forgery: only nonces this manager issued count. The exact token it stored when it signed it is
  // proof enough (and spares an Ed25519 verify per report); any other token is checked, so that a
  // forgery and a nonce the manager never issued are told apart, and only a signed one is audited
  // with what it claims.
  if (issued?.token !== token) {
    if (!signedBy(token, ctx.managerPublicKeys)) {
      throw new ResultRefused('NONCE_SIGNATURE_INVALID', 'The update nonce in the result is not signed by this manager.', result, undefined, command);
    }
    throw new ResultRefused('NONCE_UNKNOWN', 'The update nonce in the result was not issued by this manager (or not with this content).', result, claimed, command);
  }
  // stolen command: a nonce issued to another host proves nothing about this one.
  if (issued.agentId !== agent.id) {
    throw new ResultRefused('NONCE_WRONG_AGENT', 'The update nonce in the result was issued to another agent.', result, claimed, command);
  }
  if (issued.commandId !== command.id || issued.deploymentId !== command.deploymentId) {
    throw new ResultRefused('NONCE_WRONG_COMMAND', `The update nonce in the result was issued for another command or deployment than ${command.id}.`, result, claimed, command);
  }
  // replay: each nonce completes one update, once.
  if (issued.consumedAt !== undefined) {
    throw new ResultRefused('NONCE_REPLAYED', `The update nonce of command ${command.id} was already used to report its outcome (${issued.consumedOutcome ?? 'unknown'}); the manager keeps that one. Drop this result.`, result, claimed, command);
  }
  const reported = issued.artifact === 'daemon' ? headers.daemonVersion : headers.agentVersion;
  // A success is only a success if the host now runs the version the nonce moved it to.
  if (result.outcome === 'succeeded' && !sameVersion(reported, issued.toVersion)) {
    throw new ResultRefused(
      'NONCE_VERSION_MISMATCH',
      `The result says command ${command.id} succeeded, but the host reports ${issued.artifact} version ${reported.slice(0, 128)}, not ${issued.toVersion}. Report the outcome once the new version runs.`,
      result,
      claimed,
      command,
    );
  }
  return { ...write, consumeNonce: { nonceId: issued.id, reportedVersion: reported } };
}

async function refuse(ctx: ManagerContext, agent: AgentIdentity, refused: ResultRefused): Promise<never> {
  // A command id the manager never issued is the client's text: only its hash goes into the chain.
  const commandId = refused.command === undefined ? { commandIdSha256: presentedSha256(refused.result.commandId) } : { commandId: refused.result.commandId };
  await ctx.audit.append({
    event: 'update.result_refused',
    actor: `agent:${agent.id}`,
    agentId: agent.id,
    deploymentId: refused.command?.deploymentId ?? refused.nonce?.deploymentId,
    outcome: 'denied',
    details: {
      code: refused.code,
      ...commandId,
      reportedOutcome: refused.result.outcome,
      ...(refused.nonce === undefined ? {} : { nonceId: refused.nonce.nonceId, nonceAgentId: refused.nonce.agentId, toVersion: refused.nonce.toVersion }),
    },
  });
  ctx.logger.warn({ event: 'update.result_refused', code: refused.code, agentId: agent.id, ...commandId }, 'refused an update result');
  // The daemon drops the result by this id, so the answer names it (it matched the command id pattern).
  throw new ManagerError(refused.code, refused.why, { details: { commandId: refused.result.commandId } });
}

/**
 * Handles one check-in of an authenticated agent. Throws ManagerError MACHINE_ID_MISMATCH (403,
 * audited) or a refused result's code; otherwise returns 200, or 426 (still with the commands)
 * when the agent is below the manager's minimum version.
 */
export async function checkIn(ctx: ManagerContext, agent: AgentIdentity, headers: CheckinHeaders, body: CheckinRequest): Promise<CheckinOutcome> {
  // cloned credentials: a credential copied to another machine is refused, and the security team told.
  await requireEnrolledMachine(ctx, agent, headers.machineId, 'a check-in');
  const minimum = ctx.settings.minAgentVersion;
  const tooOld = minimum !== undefined && isBelow(headers.agentVersion, minimum);

  const results: (CheckinResultWrite & { deploymentId: string | undefined })[] = [];
  for (const result of body.results) {
    try {
      results.push(await checkResult(ctx, agent, headers, result));
    } catch (error) {
      if (error instanceof ResultRefused) await refuse(ctx, agent, error);
      throw error;
    }
  }
  // Each result that moves an update on is audited with the check-in that records it.
  const audit: PendingAuditRecord[] = [];
  for (const result of results) {
    if (result.consumeNonce === undefined && result.outcome !== 'deferred') continue;
    audit.push(
      ctx.audit.entry({
        event: result.outcome === 'deferred' ? 'update.deferred' : 'update.completed',
        actor: `agent:${agent.id}`,
        agentId: agent.id,
        deploymentId: result.deploymentId,
        outcome: result.outcome,
        details: {
          commandId: result.commandId,
          ...(result.consumeNonce === undefined ? {} : { nonceId: result.consumeNonce.nonceId, reportedVersion: result.consumeNonce.reportedVersion }),
          ...(typeof result.detail['code'] === 'string' ? { code: result.detail['code'] } : {}),
        },
      }),
    );
  }
  const written = await ctx.store.recordCheckin({
    agentId: agent.id,
    audit,
    at: ctx.now(),
    agentVersion: headers.agentVersion,
    daemonVersion: headers.daemonVersion,
    health: body.health,
    update: body.state.update,
    inventory: body.inventory,
    acks: body.acks,
    results,
    commandLimit: managerLimits.commandsPerCheckin,
  });
  if (!written.ok) {
    // Lost a race: the same nonce was consumed by a concurrent check-in between the check and the write.
    const result = body.results.find((r) => r.commandId === written.commandId);
    if (result !== undefined) {
      const command = await ctx.store.getCommand(result.commandId);
      await refuse(ctx, agent, new ResultRefused('NONCE_REPLAYED', 'The update nonce of this result was already used to report an outcome. Drop this result.', result, undefined, command));
    }
    throw new ManagerError('NONCE_REPLAYED', 'An update nonce of this check-in was already used to report an outcome.');
  }
  if (audit.length > 0) await ctx.audit.flush();
  const commands = written.commands.map(toStub);
  // droverd leaves a delivered command unacked only while another update is in progress (it takes it
  // later). A daemon with none that has not acked it never got the answer that carried it (cut by a
  // proxy, a replica killed mid-answer): it is new to that daemon, and goes out at once, not after a
  // held check-in's whole wait.
  const busy = body.state.update !== undefined;
  const newCommands = written.commands.filter((c) => c.deliveredCount <= 1 || !busy).length;
  const nextCheckinSeconds = ctx.settings.checkinIntervalSeconds;
  if (tooOld) {
    return {
      newCommands,
      status: 426,
      body: {
        error: { code: 'AGENT_VERSION_TOO_OLD', message: `Agent version ${headers.agentVersion} is below this manager's minimum ${minimum}. Install the update command in this response.` },
        commands,
        nextCheckinSeconds,
      },
    };
  }
  return { status: 200, body: { commands, nextCheckinSeconds }, newCommands };
}
