#!/usr/bin/env node
// The `droverd` command that npm links into node_modules/.bin. It is checked in, not built, so the
// link exists right after `npm ci` on a fresh clone (npm links nothing for a bin target that does
// not exist yet); it runs the compiled daemon, or says how to build it when that is missing.
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const entry = new URL('../dist/bin.js', import.meta.url);

try {
  await import(entry.href);
} catch (error) {
  // Only the entry point itself missing means "not built": a module missing deeper down is a real fault.
  // Node sets `url` on the error from 20.x; the message names the path on every version.
  const missing = error?.code === 'ERR_MODULE_NOT_FOUND' &&
    (error.url === undefined ? String(error.message).includes(`'${fileURLToPath(entry)}'`) : error.url === entry.href);
  if (!missing) throw error;
  const root = resolve(fileURLToPath(import.meta.url), '../../..');
  process.stderr.write(`droverd is not built yet: run \`npm run build\` in ${root}\n`);
  process.exitCode = 1;
}
