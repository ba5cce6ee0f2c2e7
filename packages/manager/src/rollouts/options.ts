import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import { schemaProblems } from '@drover/protocol';
import { ManagerError } from '../errors.js';
import { describeSchemaProblems } from '../presented.js';
import type { RolloutOptions } from './records.js';

// A rollout's options: the manager's defaults (settings.rollout), overridden per deployment by the
// notification's `metadata.rollout` (CIRIS's notification has no such fields; metadata is its
// free-form bag). Fixed at creation and stored with the deployment, so a restart or a changed
// default never alters a rollout under way.

/**
 * The options a rollout runs with when neither manager.json's `settings.rollout` nor the
 * notification's `metadata.rollout` sets them.
 */
export const defaultRolloutOptions: RolloutOptions = {
  maxInFlight: 100, // targets updating at once
  minHealthyRatio: 1, // share of a phase that must succeed
  maxFailures: 0, // failed targets a phase may have
  soakSeconds: 300, // seconds between a passed gate and the next phase
  healthGraceSeconds: 60, // seconds of healthy running on the new version before a target succeeds
  deferralWindowSeconds: 3600, // seconds a busy agent may keep deferring
  targetDeadlineSeconds: 7200, // seconds one target has to end
  deferralBackoffSeconds: 5, // seconds before a busy push-mode agent is asked again (doubling)
  deferralBackoffMaxSeconds: 300, // seconds: the longest wait between two asks
  autoRollback: true,
  percentages: [10, 30, 100],
};

/**
 * The JSON Schema (TypeBox) of a deployment's rollout options: `metadata.rollout` of a deploy
 * notification (`POST /manager/v1/updates/notify`) and `settings.rollout` of manager.json; every
 * member optional.
 */
export const RolloutOptionsSchema = Type.Object(
  {
    maxInFlight: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
    minHealthyRatio: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
    maxFailures: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000 })),
    soakSeconds: Type.Optional(Type.Number({ minimum: 0, maximum: 30 * 86400 })),
    healthGraceSeconds: Type.Optional(Type.Number({ minimum: 0, maximum: 86400 })),
    deferralWindowSeconds: Type.Optional(Type.Number({ minimum: 0, maximum: 30 * 86400 })),
    targetDeadlineSeconds: Type.Optional(Type.Number({ minimum: 1, maximum: 30 * 86400 })),
    deferralBackoffSeconds: Type.Optional(Type.Number({ minimum: 0.01, maximum: 86400 })),
    deferralBackoffMaxSeconds: Type.Optional(Type.Number({ minimum: 0.01, maximum: 86400 })),
    autoRollback: Type.Optional(Type.Boolean()),
    percentages: Type.Optional(Type.Array(Type.Number({ exclusiveMinimum: 0, maximum: 100 }), { minItems: 1, maxItems: 10 })),
  },
  { $id: 'RolloutOptions', additionalProperties: false, description: 'Options of a rollout: manager defaults, overridden by metadata.rollout of a notification.' },
);
/** Rollout options as a notification's `metadata.rollout` gives them: any of {@link RolloutOptions}, each checked against its bounds. */
export type RolloutOptionsInput = Static<typeof RolloutOptionsSchema>;

/** The options of a new rollout: `input` (from the notification) over `defaults` (from settings). */
export function resolveRolloutOptions(input: unknown, defaults: RolloutOptions = defaultRolloutOptions): RolloutOptions {
  if (input === undefined || input === null) return { ...defaults, percentages: [...defaults.percentages] };
  const problems = schemaProblems(RolloutOptionsSchema, input, 3);
  if (problems.length > 0) {
    throw new ManagerError('ROLLOUT_OPTIONS_INVALID', `metadata.rollout is not valid rollout options (${describeSchemaProblems(RolloutOptionsSchema, problems)}). Fix the field named.`);
  }
  const given = input as RolloutOptionsInput;
  const options: RolloutOptions = { ...defaults, ...given, percentages: [...(given.percentages ?? defaults.percentages)] };
  const p = options.percentages;
  // Cumulative shares: each phase covers more of the fleet, and the last one all of it.
  if (p.some((value, i) => i > 0 && value <= (p[i - 1] ?? 0)) || p.at(-1) !== 100) {
    throw new ManagerError('ROLLOUT_OPTIONS_INVALID', `metadata.rollout.percentages must rise and end at 100 (got ${p.join(', ')}), e.g. [10, 30, 100].`);
  }
  return options;
}
