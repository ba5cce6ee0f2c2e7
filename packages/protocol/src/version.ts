import semver from 'semver';
import { DataError } from './errors.js';

// A version is either a semantic version (a leading `v` tolerated) or a commit SHA (6-40 hex).
// SHAs have no order: only an explicit rollback may move a host onto one (docs/decisions/0002).

const COMMIT_SHA = /^[0-9a-f]{6,40}$/i;

/** A parsed version: a normalised semver, or a lowercase commit SHA (which has no order). */
export type Version = { kind: 'semver'; value: string } | { kind: 'commit'; value: string };

/** The normalised semver (`v1.2.3` -> `1.2.3`), or undefined when `text` is not one. */
export function parseSemver(text: string): string | undefined {
  const cleaned = text.trim().replace(/^v(?=\d)/, '');
  return semver.valid(cleaned) ?? undefined;
}

/** True when `text` is 6-40 hex digits, the form of a commit SHA. */
export function isCommitSha(text: string): boolean {
  // An all-digit string like 123456 is a SHA only if it is not a valid semver either.
  return COMMIT_SHA.test(text);
}

/**
 * Reads a version: a semantic version (a leading `v` tolerated, `v1.2.3` becomes `1.2.3`) or a
 * commit SHA (6-40 hex, lower-cased). Throws DataError `VERSION_INVALID` for anything else.
 */
export function parseVersion(text: string): Version {
  const sem = parseSemver(text);
  if (sem !== undefined) return { kind: 'semver', value: sem };
  if (isCommitSha(text.trim())) return { kind: 'commit', value: text.trim().toLowerCase() };
  throw new DataError('VERSION_INVALID', `"${text.slice(0, 64)}" is neither a semantic version (1.2.3) nor a commit SHA (6-40 hex).`);
}

/**
 * Compares two versions. Throws DataError `VERSION_INVALID` when either is not a version.
 *
 * @returns -1, 0 or 1 for two semvers; 0 for the same commit; undefined when the two have no
 * order (a commit SHA against anything else)
 */
export function compareVersions(a: string, b: string): -1 | 0 | 1 | undefined {
  const va = parseVersion(a);
  const vb = parseVersion(b);
  if (va.kind === 'semver' && vb.kind === 'semver') return semver.compare(va.value, vb.value);
  if (va.kind === 'commit' && vb.kind === 'commit') {
    return va.value.startsWith(vb.value) || vb.value.startsWith(va.value) ? 0 : undefined;
  }
  return undefined;
}

/**
 * rollback: a host moves from `running` to `target` only to a strictly higher semver, or when
 * the move is an explicit, signed rollback. A host on a commit build may move to any semver.
 */
export function isUpgrade(running: string, target: string): boolean {
  const vt = parseVersion(target);
  if (vt.kind !== 'semver') return false;
  const vr = parseVersion(running);
  return vr.kind === 'commit' || semver.gt(vt.value, vr.value);
}

/** True when `version` is below `minimum` (both semver); a commit build is never below. */
export function isBelow(version: string, minimum: string): boolean {
  return compareVersions(version, minimum) === -1;
}
