import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

// The checked-in bin files npm links at install time: they run the built CLI, and say how to build it
// when only the build is missing (an install with --ignore-scripts), without hiding any other fault.
const run = promisify(execFile);
const work = mkdtempSync(join(tmpdir(), 'drover-bins-'));
afterAll(() => { rmSync(work, { recursive: true, force: true }); });

/** A copy of one package's bin file at <work>/<name>/pkg/bin/<file>, with dist/bin.js as given (or none). */
function layout(name: string, from: string, distBin?: string): string {
  const bin = join(work, name, 'pkg', 'bin');
  mkdirSync(bin, { recursive: true });
  const file = join(bin, from.split('/').at(-1) ?? '');
  cpSync(from, file);
  if (distBin !== undefined) {
    mkdirSync(join(work, name, 'pkg', 'dist'));
    writeFileSync(join(work, name, 'pkg', 'dist', 'bin.js'), distBin);
  }
  return file;
}

async function exec(file: string): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [file, '--help']);
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe.each([
  ['drover', 'packages/cli/bin/drover.js'],
  ['droverd', 'daemon/bin/droverd.js'],
])('the %s bin file', (name, path) => {
  it('says to run npm run build, exit 1, when the build is missing', async () => {
    const result = await exec(layout(`${name}-unbuilt`, path));
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`${name} is not built yet: run \`npm run build\` in `);
  });

  it('runs the built entry point with the arguments', async () => {
    const result = await exec(layout(`${name}-built`, path, 'console.log(JSON.stringify(process.argv.slice(2)));\n'));
    expect(result).toEqual({ code: 0, stdout: '["--help"]\n', stderr: '' });
  });

  it('lets a module missing deeper down surface as the fault it is', async () => {
    const result = await exec(layout(`${name}-broken`, path, "import './missing-helper.js';\n"));
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('ERR_MODULE_NOT_FOUND');
    expect(result.stderr).not.toContain('not built yet');
  });
});
