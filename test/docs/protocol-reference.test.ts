import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

// docs/protocol-reference.md is generated from the protocol's JSON Schemas (written by `npm run build`).
// A schema changed without regenerating the doc (`npm run docs:protocol`) fails here.
const script = fileURLToPath(new URL('../../packages/protocol/scripts/write-protocol-reference.js', import.meta.url));
const committed = fileURLToPath(new URL('../../docs/protocol-reference.md', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'drover-protocol-reference-'));

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('docs/protocol-reference.md', () => {
  it('is exactly what the generator writes from the current schemas', () => {
    const out = join(dir, 'protocol-reference.md');
    execFileSync(process.execPath, [script, '--out', out], { stdio: 'pipe' });
    const generated = readFileSync(out, 'utf8');
    expect(generated).toContain('## UpdateCommand');
    expect(readFileSync(committed, 'utf8')).toBe(generated);
  });

  it('names every schema the build exported', () => {
    const index = JSON.parse(readFileSync(new URL('../../packages/protocol/dist/schemas/index.json', import.meta.url), 'utf8')) as { schemas: { name: string }[] };
    const doc = readFileSync(committed, 'utf8');
    expect(index.schemas.length).toBeGreaterThan(30);
    expect(index.schemas.map((schema) => schema.name).filter((name) => !doc.includes(`\n## ${name}\n`))).toEqual([]);
  });
});
