import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { protocolErrorCodes } from '@drover/protocol';
import { agentErrorCodes, agentResponseCodes } from '../../packages/agent/src/errors.js';
import { cliErrorCodes } from '../../packages/cli/src/errors.js';

// STYLE.md: docs/errors.md lists every code a user can see. A code added without its row fails here.
const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');

function undocumented(codes: readonly string[]): string[] {
  return codes.filter((code) => !doc.includes(`\`${code}\``));
}

describe('docs/errors.md', () => {
  it('lists every @drover/protocol code', () => {
    expect(undocumented(protocolErrorCodes)).toEqual([]);
  });

  it('lists every CLI code, and INTERNAL_ERROR', () => {
    expect(undocumented([...cliErrorCodes, 'INTERNAL_ERROR'])).toEqual([]);
  });

  it('lists every @drover/agent code', () => {
    expect(undocumented([...agentErrorCodes, ...Object.keys(agentResponseCodes)])).toEqual([]);
  });
});
