#!/usr/bin/env node
import { main } from './cli/main.js';

const code = await main(process.argv.slice(2), {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  env: process.env,
});
// Exit explicitly: a command is done when main resolves, whatever handles (timers, sockets) remain.
process.exitCode = code;
process.stdout.write('', () => {
  process.exit(code);
});
