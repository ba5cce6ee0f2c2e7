import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// docs/threat-model.md names, for each attack, the tests that show it refused, as
// `path/to/file.test.ts` › "the test's title". A renamed, moved or deleted test fails here, so the
// document cannot point at a test that no longer exists.
const root = new URL('../../', import.meta.url);
const doc = readFileSync(new URL('docs/threat-model.md', root), 'utf8');

interface Row {
  attack: string;
  tests: { file: string; title: string }[];
}

/** The rows of the "## Attacks" table: the attack (first cell) and every test named in the last cell. */
function attackRows(): Row[] {
  const start = doc.indexOf('\n## Attacks\n');
  const end = doc.indexOf('\n## ', start + 1);
  const section = doc.slice(start, end === -1 ? undefined : end);
  const lines = section.split('\n').filter((line) => line.startsWith('| ') && !line.startsWith('| attack |') && !line.startsWith('|---'));
  return lines.map((line) => {
    const cells = line.split(' | ');
    const attack = (cells[0] ?? '').replace(/^\| /, '');
    const last = cells[cells.length - 1] ?? '';
    const tests = [...last.matchAll(/`([^`]+\.test\.ts)` › "([^"]+)"/g)].map((match) => ({ file: match[1] ?? '', title: match[2] ?? '' }));
    return { attack, tests };
  });
}

/** Whether the source defines a test with this title, in any quoting a test file uses. */
function definesTitle(source: string, title: string): boolean {
  const quoted = [`'${title.replace(/'/g, "\\'")}'`, `"${title.replace(/"/g, '\\"')}"`, `\`${title}\``];
  // it.each([...])('title with %s', ...): the title is the literal right after the table's `)(`.
  const afterTable = (literal: string): boolean => new RegExp(`\\)\\(\\s*${literal.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`).test(source);
  return quoted.some((literal) => source.includes(`it(${literal}`) || source.includes(`test(${literal}`) || afterTable(literal));
}

const rows = attackRows();

describe('docs/threat-model.md', () => {
  it('has a row for each of TUF\u2019s attacks and for drover\u2019s own', () => {
    const attacks = rows.map((row) => row.attack.toLowerCase()).join('\n');
    for (const name of ['arbitrary installation', 'rollback', 'indefinite freeze', 'endless data', 'slow retrieval', 'mix-and-match', 'key compromise', 'stolen', 'copied config', 'replayed nonce', 'downgrade', 'timing attack']) {
      expect(attacks, name).toContain(name);
    }
  });

  it('names at least one test in every row', () => {
    expect(rows.length).toBeGreaterThanOrEqual(12);
    expect(rows.filter((row) => row.tests.length === 0).map((row) => row.attack)).toEqual([]);
  });

  it('names only test files that exist and test titles they contain', () => {
    const missing: string[] = [];
    for (const row of rows) {
      for (const { file, title } of row.tests) {
        const path = fileURLToPath(new URL(file, root));
        if (!existsSync(path)) missing.push(`${file}: no such file (row "${row.attack}")`);
        else if (!definesTitle(readFileSync(path, 'utf8'), title)) missing.push(`${file}: no test titled "${title}" (row "${row.attack}")`);
      }
    }
    expect(missing).toEqual([]);
  });
});
