// examples/systemd/README.md tells an operator what to type on a host. It must point at files that
// exist (systemd/..., docs/..., and the headings it names in them), use only options install.sh
// really has, and name no option that none of the tools it runs knows.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { drover, repoRoot, run } from '../helpers/cli.js';
import { brokenLinks, codeBlocks, inlineCode, relativeLinks } from './markdown.js';

const readmePath = join(repoRoot, 'examples', 'systemd', 'README.md');
const readme = readFileSync(readmePath, 'utf8');
const installScript = readFileSync(join(repoRoot, 'systemd', 'install.sh'), 'utf8');
const flagsIn = (text: string): string[] => [...text.matchAll(/(?<![\w-])--[a-z][a-z-]*/g)].map((match) => match[0]);

/** The options install.sh parses: the labels of its `case "$1"` branches. */
const installOptions = new Set([...installScript.matchAll(/^\s+(?:-h\|)?(--[a-z-]+)\)/gm)].map((match) => match[1] ?? ''));

/** The `--flags` written after `install.sh` (not uninstall.sh) in the README's code. */
function installFlagsInReadme(): string[] {
  const lines = [...codeBlocks(readme).flatMap((block) => block.split('\n')), ...inlineCode(readme)];
  return lines.flatMap((line) => {
    const at = line.search(/(?:^|[\s/])install\.sh\b/);
    return at === -1 ? [] : flagsIn(line.slice(at));
  });
}

describe('examples/systemd/README.md', () => {
  it('links to systemd/ and docs/ files (and headings) that exist', () => {
    const links = relativeLinks(readme);
    for (const path of ['../../systemd/install.sh', '../../systemd/uninstall.sh', '../../systemd/droverd.service', '../../docs/install.md']) expect(links).toContain(path);
    expect(brokenLinks(readmePath)).toEqual([]);
  });

  it('uses only options that systemd/install.sh has', () => {
    expect(installOptions).toContain('--manager-key');
    const used = installFlagsInReadme();
    for (const flag of ['--manager', '--manager-key', '--token', '--trust', '--agent', '--agent-release', '--force-daemon', '--root', '--no-start', '--tofu']) expect(used).toContain(flag);
    expect([...new Set(used)].filter((flag) => !installOptions.has(flag) || !installScript.includes(flag))).toEqual([]);
  });

  it('names no option that none of the tools it runs knows', async () => {
    expect(existsSync(join(repoRoot, 'daemon', 'dist', 'bin.js')), 'droverd is not built: run `npm run build`').toBe(true);
    const droverd = (args: string[]) => run(process.execPath, [join(repoRoot, 'daemon', 'dist', 'bin.js'), ...args]);
    const helps = await Promise.all([
      run('bash', [join(repoRoot, 'systemd', 'install.sh'), '--help']),
      run('bash', [join(repoRoot, 'systemd', 'uninstall.sh'), '--help']),
      ...['status', 'verify', 'install', 'enroll', 'run'].map((command) => droverd([command, '--help'])),
      ...[['enroll-token', 'create'], ['agents', 'list']].map((command) => drover([...command, '--help'])),
    ]);
    const known = new Set(helps.flatMap((help) => flagsIn(help.stdout)));
    // daemon/scripts/bundle.js's own options, and droverd's --version (what install.sh runs).
    for (const flag of flagsIn(readFileSync(join(repoRoot, 'daemon', 'scripts', 'bundle.js'), 'utf8'))) known.add(flag);
    known.add('--version');
    const mentioned = new Set([...codeBlocks(readme), ...inlineCode(readme)].flatMap(flagsIn));
    expect([...mentioned].filter((flag) => !known.has(flag))).toEqual([]);
  });
});
