// The daemon's own version. A self-update bundle (the `daemon` artifact) has it compiled in by
// esbuild's `define` (scripts/bundle.js, whose default is package.json's version); the tsc build
// uses PACKAGE_VERSION.
declare const __DROVERD_VERSION__: string | undefined;

// This package's version. The root package.json's "version" is the one source: scripts/set-version.js
// writes it here and into every package.json, and test/packaging/version.test.ts fails when they drift.
export const PACKAGE_VERSION = '0.1.0';

/** The version of this droverd. */
export const DAEMON_VERSION: string = typeof __DROVERD_VERSION__ === 'string' ? __DROVERD_VERSION__ : PACKAGE_VERSION;

/** The version reported while no agent is installed yet: anything signed is an upgrade from it. */
export const NO_VERSION = '0.0.0';
