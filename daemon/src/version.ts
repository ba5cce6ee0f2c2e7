import { readFileSync } from 'node:fs';

// The daemon's own version. A self-update bundle (the `daemon` artifact) has it compiled in by
// esbuild's `define`; the tsc build reads it from package.json.
declare const __DROVERD_VERSION__: string | undefined;

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : '0.0.0';
  } catch {
    return '0.0.0';
  }
}

/** The version of this droverd. */
export const DAEMON_VERSION: string = typeof __DROVERD_VERSION__ === 'string' ? __DROVERD_VERSION__ : packageVersion();

/** The version reported while no agent is installed yet: anything signed is an upgrade from it. */
export const NO_VERSION = '0.0.0';
