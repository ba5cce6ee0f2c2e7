// Bundles the web console (console/) into dist/console/, served by the manager at /ui.
// Run by the workspace's `npm run build`; the output is not committed.
import { copyFile, mkdir } from 'node:fs/promises';
import { build } from 'esbuild';

const src = new URL('../console/', import.meta.url);
const out = new URL('../dist/console/', import.meta.url);
await mkdir(out, { recursive: true });
await build({
  entryPoints: [new URL('app.js', src).pathname],
  outfile: new URL('app.js', out).pathname,
  bundle: true,
  minify: true,
  format: 'esm',
  target: 'es2020',
  legalComments: 'none',
  logLevel: 'warning',
});
for (const file of ['index.html', 'app.css']) await copyFile(new URL(file, src), new URL(file, out));
