import { describe, expect, it } from 'vitest';
import { expectError } from '../../../test/helpers/expect-error.js';
import { DataError } from './errors.js';
import { compareVersions, isBelow, isUpgrade, parseVersion } from './version.js';

describe('versions', () => {
  it('parses semvers (with or without v) and commit SHAs', () => {
    expect(parseVersion('v1.2.3')).toEqual({ kind: 'semver', value: '1.2.3' });
    expect(parseVersion('1.2.3-rc.1')).toEqual({ kind: 'semver', value: '1.2.3-rc.1' });
    expect(parseVersion('ABCDEF1')).toEqual({ kind: 'commit', value: 'abcdef1' });
    expectError(() => parseVersion('latest'), DataError, 'VERSION_INVALID');
    expectError(() => parseVersion('abc'), DataError, 'VERSION_INVALID');
  });

  it('orders semvers and leaves commits unordered', () => {
    expect(compareVersions('1.10.0', '1.9.0')).toBe(1);
    expect(compareVersions('1.0.0-rc.1', '1.0.0')).toBe(-1);
    expect(compareVersions('v1.0.0', '1.0.0')).toBe(0);
    expect(compareVersions('abcdef1', 'abcdef1234')).toBe(0);
    expect(compareVersions('abcdef1', '1.0.0')).toBeUndefined();
    expect(compareVersions('abcdef1', '1234567')).toBeUndefined();
  });

  it('allows only strict semver upgrades, or any semver from a commit build', () => {
    expect(isUpgrade('1.0.0', '1.0.1')).toBe(true);
    expect(isUpgrade('1.0.1', '1.0.1')).toBe(false);
    expect(isUpgrade('1.0.1', '1.0.0')).toBe(false);
    expect(isUpgrade('1.0.0', 'abcdef1')).toBe(false);
    expect(isUpgrade('abcdef1', '0.0.1')).toBe(true);
    expect(isUpgrade('abcdef1', '1234567')).toBe(false);
  });

  it('finds versions below a minimum', () => {
    expect(isBelow('1.0.0', '1.1.0')).toBe(true);
    expect(isBelow('1.1.0', '1.1.0')).toBe(false);
    expect(isBelow('abcdef1', '1.1.0')).toBe(false);
  });
});
