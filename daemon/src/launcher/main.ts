#!/usr/bin/env node
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { LAUNCHER_ENV } from '../config.js';
import { resolveConfigFile, resolvePaths } from '../host/paths.js';
import { loadSettings } from '../settings.js';
import { prepareBoot } from './boot.js';

// `node launcher.mjs <droverd arguments>`: resolves the state directory exactly as droverd does
// (--state-dir, $STATE_DIRECTORY, droverd.json, env-paths), decides which droverd to boot, and
// imports it in this process; droverd reads its arguments from process.argv as usual.

function line(level: string, msg: string, fields: Record<string, unknown>): void {
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), level, component: 'drover:launcher', msg, ...fields })}\n`);
}

try {
  const { values } = parseArgs({ args: process.argv.slice(2), options: { config: { type: 'string' }, 'state-dir': { type: 'string' } }, strict: false, allowPositionals: true });
  const configFile = typeof values['config'] === 'string' ? values['config'] : undefined;
  const stateDir = typeof values['state-dir'] === 'string' ? values['state-dir'] : undefined;
  const config = resolveConfigFile({ env: process.env, configFile });
  const settings = await loadSettings(config.path, config.explicit, process.env);
  const paths = resolvePaths({ env: process.env, configFile, stateDir, configuredStateDir: settings.stateDir });
  const decision = await prepareBoot(paths);
  if (decision.rolledBack !== undefined) {
    line('warn', 'The new droverd failed to boot too many times; going back to the previous one', { event: 'launcher.rollback', ...decision.rolledBack });
  } else if (decision.counted !== undefined) {
    line('info', 'Booting an uncommitted droverd update', { event: 'launcher.boot', version: decision.version, boot: decision.counted.boots });
  }
  process.env[LAUNCHER_ENV] = '1';
  await import(pathToFileURL(decision.entry).href);
} catch (error) {
  const code = (error as { code?: unknown }).code;
  line('error', error instanceof Error ? error.message : String(error), { event: 'launcher.failed', code: typeof code === 'string' ? code : 'INTERNAL_ERROR' });
  process.exit(1);
}
