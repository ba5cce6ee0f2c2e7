import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { httpErrorCodes } from '@drover/http';
import { protocolErrorCodes } from '@drover/protocol';
import { agentErrorCodes, agentResponseCodes } from '../../packages/agent/src/errors.js';
import { cliErrorCodes } from '../../packages/cli/src/errors.js';
import { managerErrorCodes, managerRequestErrorCodes } from '@drover/manager';
import { statusOf } from '../../packages/manager/src/http/status.js';

// STYLE.md: docs/errors.md lists every code a user can see. A code added without its row fails here.
const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');

function undocumented(codes: readonly string[]): string[] {
  return codes.filter((code) => !doc.includes(`\`${code}\``));
}

describe('docs/errors.md', () => {
  it('lists every @drover/protocol code', () => {
    expect(undocumented(protocolErrorCodes)).toEqual([]);
  });

  it('lists every @drover/http code in its own section', () => {
    const start = doc.indexOf('## @drover/http');
    const section = doc.slice(start, doc.indexOf('\n## ', start + 1));
    expect(start).toBeGreaterThan(-1);
    expect(httpErrorCodes.filter((code) => !section.includes(`\`${code}\``))).toEqual([]);
  });

  it('lists every CLI code, and INTERNAL_ERROR', () => {
    expect(undocumented([...cliErrorCodes, 'INTERNAL_ERROR'])).toEqual([]);
  });

  it('lists every @drover/manager code, each route code with the status the manager answers it with', () => {
    expect(undocumented(managerErrorCodes)).toEqual([]);
    const section = doc.slice(doc.indexOf('## @drover/manager'), doc.indexOf('\n## ', doc.indexOf('## @drover/manager') + 1));
    const documented = new Map([...section.matchAll(/^\| (\d{3}) \| `([A-Z_]+)` \|/gm)].map((row) => [row[2], Number(row[1])]));
    expect(Object.fromEntries(managerRequestErrorCodes.map((code) => [code, documented.get(code)]))).toEqual(Object.fromEntries(managerRequestErrorCodes.map((code) => [code, statusOf(code)])));
  });

  it('lists every @drover/agent code', () => {
    expect(undocumented([...agentErrorCodes, ...Object.keys(agentResponseCodes)])).toEqual([]);
  });
});
