// Builds droverd's two single-file bundles with esbuild:
//   dist/bundle/droverd.mjs   the `daemon` artifact (what self-update installs), its version compiled in
//   dist/bundle/launcher.mjs  the launcher systemd starts, installed once by install.sh
//
//   node daemon/scripts/bundle.js [--out DIR] [--version V]
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import process from 'node:process';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';

const daemonDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const repoRoot = resolve(daemonDir, '..');

// The public entry names (what tests and benchmarks pass) and the source each one bundles.
const entryPoints = { bin: 'bin.ts', 'launcher-main': 'launcher/main.ts' };

// Some dependencies are CommonJS and require() Node's built-ins: give the ESM bundle a require.
const banner = "import { createRequire as __droverdCreateRequire } from 'node:module'; const require = __droverdCreateRequire(import.meta.url);";

/**
 * Bundles one entry point of droverd into a single ESM file.
 * @param {{ entry: 'bin' | 'launcher-main', outfile: string, version?: string, prelude?: string }} options
 */
export async function bundleDaemon(options) {
  const version = options.version ?? JSON.parse(await readFile(join(daemonDir, 'package.json'), 'utf8')).version;
  await build({
    entryPoints: [join(daemonDir, 'src', entryPoints[options.entry])],
    outfile: options.outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    tsconfig: join(repoRoot, 'tsconfig.json'),
    define: { __DROVERD_VERSION__: JSON.stringify(version) },
    banner: { js: `${options.prelude ?? ''}${banner}` },
    legalComments: 'none',
    logLevel: 'warning',
  });
  return { outfile: options.outfile, version };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { out: { type: 'string' }, version: { type: 'string' } } });
  const out = values.out ?? join(daemonDir, 'dist', 'bundle');
  const daemon = await bundleDaemon({ entry: 'bin', outfile: join(out, 'droverd.mjs'), version: values.version });
  const launcher = await bundleDaemon({ entry: 'launcher-main', outfile: join(out, 'launcher.mjs'), version: values.version });
  process.stdout.write(`${JSON.stringify({ droverd: daemon.outfile, launcher: launcher.outfile, version: daemon.version })}\n`);
}
