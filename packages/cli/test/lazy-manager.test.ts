// `drover release sign` and the other commands that need no manager must not load one: the
// manager brings better-sqlite3 (a native module) and fastify. The CLI runs here with a module
// resolve hook that refuses them, so a static import of @drover/manager anywhere on the path of
// these commands makes them fail.
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { droverBin, run } from '../../../test/helpers/cli.js';

const hooks = `export async function resolve(specifier, context, next) {
  if (/^(@drover\\/manager|better-sqlite3|fastify)(\\/|$)/.test(specifier)) throw new Error('refused to load ' + specifier);
  return next(specifier, context);
}`;
const preload = `import { register } from 'node:module'; register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hooks)}`)});`;

/** `drover` with the manager and its heavy dependencies made unloadable. */
const droverWithoutManager = (args: string[]) => run(process.execPath, ['--import', `data:text/javascript,${encodeURIComponent(preload)}`, droverBin, ...args]);

let dir: string;
const at = (name: string): string => join(dir, name);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'drover-lazy-'));
  await writeFile(at('agent.bin'), 'an agent\n');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('drover loads the manager only for the commands that need it', () => {
  it('keygen, release sign and verify and the help listings run without it', async () => {
    const steps = [
      ['keygen', '--out', at('keys'), '--name', 'rel'],
      ['release', 'sign', '--key', at('keys/rel.key'), '--artifact', 'agent', '--version', '1.0.0', '--platform', 'linux-x64', at('agent.bin')],
      ['release', 'verify', '--pub', at('keys/rel.pub'), at('agent.bin')],
      ['release', 'publish', '--help'],
      ['release', '--help'],
      ['--help'],
    ];
    for (const args of steps) {
      const result = await droverWithoutManager(args);
      expect({ args, code: result.code, stderr: result.stderr }).toEqual({ args, code: 0, stderr: '' });
    }
    expect((await stat(at('agent.bin.release.json'))).isFile()).toBe(true);
  });

  it('the hook bites: commands that use the manager fail under it', async () => {
    for (const args of [['manager', 'init', '--help'], ['rollout', 'start', '--help']]) {
      const result = await droverWithoutManager(args);
      expect(result.code, args.join(' ')).not.toBe(0);
      expect(result.stderr).toContain('refused to load @drover/manager');
    }
  });
});
