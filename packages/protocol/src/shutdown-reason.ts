import { isCommitSha, parseSemver } from './version.js';

/** What {@link formatShutdownReason} puts in the text; every field is optional. */
export interface ShutdownReasonInput {
  /** A semantic version (`v1.2.3` in the text) or a commit SHA (its first 7 hex). */
  version?: string | undefined;
  /** Used when `version` is not a semantic version. */
  commitSha?: string | undefined;
  /** Named as `(deployment <id>)`. */
  deploymentId?: string | undefined;
  /** Release notes: one entry a line; blank lines are dropped. */
  changelog?: string | undefined;
  /** Who asked; CIRIS's text says `wa-system-admin`. */
  actor?: string | undefined;
}

const PREFIX = 'System shutdown requested: Runtime: ';

/**
 * The reason text a CIRIS-compatible agent receives when it is asked to shut down for an update.
 *
 * @example
 * ```ts
 * formatShutdownReason({ version: '1.2.3', deploymentId: 'abc123', changelog: 'fix: leak' })
 * // 'System shutdown requested: Runtime: CD update to version v1.2.3 (deployment abc123) - fix: leak
 * // (API shutdown by wa-system-admin)'
 * ```
 */
export function formatShutdownReason(input: ShutdownReasonInput): string {
  const version = input.version?.trim();
  const semver = version === undefined ? undefined : parseSemver(version);
  const sha = [input.commitSha, version].map((v) => v?.trim()).find((v) => v !== undefined && isCommitSha(v));
  let text: string;
  if (semver !== undefined) text = `CD update to version v${semver}`;
  else if (sha !== undefined) text = `CD update to commit ${sha.slice(0, 7)}`;
  else text = 'CD update requested';
  if (input.deploymentId !== undefined && input.deploymentId !== '') text += ` (deployment ${input.deploymentId})`;

  const lines = (input.changelog ?? '')
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '');
  if (lines.length === 1) text += ` - ${lines[0] ?? ''}`;
  else if (lines.length > 1) text += `\nRelease notes:${lines.map((line) => `\n  • ${line}`).join('')}`;

  return `${PREFIX}${text}\n(API shutdown by ${input.actor ?? 'wa-system-admin'})`;
}

/** Replaces control characters (C0, DEL, C1, line and paragraph separators) with spaces, for logging. */
export function sanitizeReason(reason: string): string {
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  return reason.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, ' ');
}
