// This package's version. The root package.json's "version" is the one source: scripts/set-version.js
// writes it here and into every package.json, and test/packaging/version.test.ts fails when they drift.
// A literal, not a read of package.json at run time, so it holds in a bundle too.
export const PACKAGE_VERSION = '0.1.0';
