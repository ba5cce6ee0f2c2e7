import { describe, expect, it } from 'vitest';
import { formatShutdownReason, sanitizeReason } from './shutdown-reason.js';

const changelog = 'fix: memory leak in telemetry service\nfeat: add new monitoring endpoint\ntest: improve coverage';

describe('formatShutdownReason', () => {
  it('returns DESIGN.md example byte for byte', () => {
    expect(formatShutdownReason({ version: '1.2.3', deploymentId: 'abc123', changelog })).toBe(
      'System shutdown requested: Runtime: CD update to version v1.2.3 (deployment abc123)\nRelease notes:\n  • fix: memory leak in telemetry service\n  • feat: add new monitoring endpoint\n  • test: improve coverage\n(API shutdown by wa-system-admin)',
    );
  });

  it('accepts a leading v and drops blank changelog lines', () => {
    expect(formatShutdownReason({ version: 'v1.2.3', deploymentId: 'abc123', changelog: `\n${changelog}\n\n` })).toBe(
      formatShutdownReason({ version: '1.2.3', deploymentId: 'abc123', changelog }),
    );
  });

  it('names a commit by its first 7 hex', () => {
    expect(formatShutdownReason({ commitSha: '78500ea1234567890abcdef', deploymentId: '23a69b03' })).toBe(
      'System shutdown requested: Runtime: CD update to commit 78500ea (deployment 23a69b03)\n(API shutdown by wa-system-admin)',
    );
    expect(formatShutdownReason({ version: 'deadbeef' })).toBe('System shutdown requested: Runtime: CD update to commit deadbee\n(API shutdown by wa-system-admin)');
  });

  it('falls back to "CD update requested"', () => {
    expect(formatShutdownReason({})).toBe('System shutdown requested: Runtime: CD update requested\n(API shutdown by wa-system-admin)');
    expect(formatShutdownReason({ version: 'latest', deploymentId: 'd1' })).toBe('System shutdown requested: Runtime: CD update requested (deployment d1)\n(API shutdown by wa-system-admin)');
  });

  it('writes a one-line changelog as " - <line>"', () => {
    expect(formatShutdownReason({ version: '2.1.0', deploymentId: 'abc-123-def', changelog: 'Security update' })).toBe(
      'System shutdown requested: Runtime: CD update to version v2.1.0 (deployment abc-123-def) - Security update\n(API shutdown by wa-system-admin)',
    );
  });
});

describe('sanitizeReason', () => {
  it('replaces control characters with spaces', () => {
    expect(sanitizeReason('a\nb\r\tc\u0000d\u001be\u007ff\u0085g\u2028h')).toBe('a b  c d e f g h');
    expect(sanitizeReason('plain • text')).toBe('plain • text');
  });
});
