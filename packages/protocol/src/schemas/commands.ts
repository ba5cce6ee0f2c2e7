import { Type } from '@sinclair/typebox';
import type { Static, TString } from '@sinclair/typebox';
import { limits } from '../config.js';
import { ArtifactSchema, CommandIdSchema, DownloadUrl, ErrorCodeSchema, Hex64, dateTime, literalUnion, VersionSchema } from './common.js';
import { DsseEnvelopeSchema } from './releases.js';

// Commands the manager sends a daemon in a check-in response, the update nonce that authorises an
// update command, and the results the daemon reports back.

/** The signed payload of an update nonce: which agent on which machine may move which artifact from which version to which, until when. */
export const NoncePayloadSchema = Type.Object(
  {
    v: Type.Literal(1),
    nonceId: Type.String({ minLength: 16, maxLength: 64, pattern: '^[A-Za-z0-9_-]+$' }),
    agentId: Type.String({ minLength: 1, maxLength: 128 }),
    machineId: Hex64,
    deploymentId: Type.String({ minLength: 1, maxLength: 128 }),
    artifact: ArtifactSchema,
    fromVersion: VersionSchema,
    toVersion: VersionSchema,
    rollback: Type.Boolean(),
    iat: Type.Integer({ minimum: 0, description: 'issued at, seconds since the epoch' }),
    exp: Type.Integer({ minimum: 0, description: 'expires at, seconds since the epoch' }),
  },
  { additionalProperties: false, $id: 'NoncePayload' },
);
/** An update nonce's payload; see {@link NoncePayloadSchema}. Trust it only as {@link verifyNonce} returns it. */
export type NoncePayload = Static<typeof NoncePayloadSchema>;

function nonceToken(description = 'A compact update nonce: base64url(payload) "." base64url(Ed25519 signature by the manager key).'): TString {
  return Type.String({ minLength: 3, maxLength: limits.nonceMaxLength, pattern: '^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$', description });
}
export const NonceTokenSchema = nonceToken();

/**
 * How a command ended. `deferred` is a progress report, not an end: the agent was busy, the daemon
 * retries until the command's deadline (or the end of its deferral window) and reports again.
 */
export const commandOutcomes = ['succeeded', 'failed', 'rolled_back', 'deferred', 'rejected'] as const;
/** How a command ended (or `deferred`, a progress report): one of {@link commandOutcomes}. */
export type CommandOutcome = (typeof commandOutcomes)[number];

/** What became of a command, as the daemon reports it in a check-in until the manager has it. */
export const CommandResultSchema = Type.Object(
  {
    commandId: CommandIdSchema,
    outcome: literalUnion(commandOutcomes),
    detail: Type.Object(
      {
        code: Type.Optional(ErrorCodeSchema),
        message: Type.Optional(Type.String({ maxLength: 4096 })),
      },
      { additionalProperties: false, description: 'Why, for any outcome but succeeded: the stable code the daemon refused or failed with.' },
    ),
    nonce: Type.Optional(nonceToken("The command's update nonce (required for results of update commands): the manager checks it issued it, and accepts it once.")),
  },
  { $id: 'CommandResult', additionalProperties: false },
);
/** A command's result; see {@link CommandResultSchema}. */
export type CommandResult = Static<typeof CommandResultSchema>;

// The update command's fields, shared by UpdateCommand and its member of the Command union (a
// union of one type would otherwise keep UpdateCommand's $id instead of taking Command's).
const updateCommandProperties = {
  id: CommandIdSchema,
  type: Type.Literal('update'),
  artifact: literalUnion(['agent', 'daemon']),
  release: DsseEnvelopeSchema,
  url: DownloadUrl,
  nonce: NonceTokenSchema,
  force: Type.Boolean({ description: 'Stop the agent even if busy, after a drain of drainTimeoutSeconds.' }),
  drainTimeoutSeconds: Type.Integer({ minimum: 0, maximum: 86400 }),
  deadline: dateTime('Give up (outcome failed, or rolled_back once swapped) if not committed by then.'),
  // Optional, so a command of a manager that predates it stays valid; a daemon that predates it
  // ignores it (responses are read tolerantly, see common.ts) and defers until `deadline` only.
  deferralWindowSeconds: Type.Optional(
    Type.Number({
      minimum: 0,
      maximum: 30 * 86400,
      description:
        'How long the daemon may keep deferring this update for a busy agent, from its first deferral; then it gives up and reports failed DEFERRAL_WINDOW_EXPIRED, leaving the running version. Absent: bounded by deadline only.',
    }),
  ),
};
/** The update command: install a signed release, authorised by an update nonce, within a deadline. */
export const UpdateCommandSchema = Type.Object(updateCommandProperties, {
  $id: 'UpdateCommand',
  description: 'Install a signed release. The daemon verifies the release and the nonce before acting on anything else in the command.',
});
/** The update command; see {@link UpdateCommandSchema}. */
export type UpdateCommand = Static<typeof UpdateCommandSchema>;

// Commands are a union discriminated by `type`: a new kind of command is a new member here.
/** Any command for the daemon, discriminated by `type`; today only `update`. */
export const CommandSchema = Type.Union([Type.Object(updateCommandProperties)], {
  $id: 'Command',
  description: 'A command for the daemon, discriminated by type; today only update.',
});
/** Any command for the daemon; see {@link CommandSchema}. */
export type Command = Static<typeof CommandSchema>;

/** Every command's common part: what a daemon can read of a command type it does not know. */
export const CommandStubSchema = Type.Object(
  {
    id: CommandIdSchema,
    type: Type.String({ minLength: 1, maxLength: 64, pattern: '^[a-z][a-z0-9_.-]*$' }),
  },
  { description: 'A command: validate each against Command; answer one of an unknown type with a rejected result, so the manager stops re-sending it.' },
);
/** A command's id and type, all a daemon reads of a command type it does not know; see {@link CommandStubSchema}. */
export type CommandStub = Static<typeof CommandStubSchema>;
