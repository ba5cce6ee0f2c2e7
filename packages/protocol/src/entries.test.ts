import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as main from './index.js';
import * as internal from './internal.js';

// The package's two entries (docs/decisions/0019-protocol-public-surface.md): `@drover/protocol`,
// the public wire protocol, and `@drover/protocol/internal`, drover's own helpers.

describe('the entries of @drover/protocol', () => {
  it('export each name from one entry only', () => {
    expect(Object.keys(internal).filter((name) => name in main)).toEqual([]);
  });

  it('keep byte, file and storage helpers out of the public entry', () => {
    for (const name of ['limits', 'readFileChunks', 'writeFileAtomic', 'brandError', 'sanitizeReason', 'Fernet', 'AuditChain', 'canonicalize', 'toHex']) {
      expect(name in main, name).toBe(false);
      expect(name in internal, name).toBe(true);
    }
  });

  it('are both in the exports map, types first, built under dist', () => {
    const manifest = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { exports: Record<string, unknown> };
    expect(manifest.exports['.']).toEqual({ types: './dist/index.d.ts', default: './dist/index.js' });
    expect(manifest.exports['./internal']).toEqual({ types: './dist/internal.d.ts', default: './dist/internal.js' });
    expect(Object.keys(manifest.exports['./internal'] as object)[0]).toBe('types');
  });
});
