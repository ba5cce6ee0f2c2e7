// Suites that need what a machine may lack (root, a mount, PostgreSQL, the S3 server): on a
// developer's machine such a suite skips and says why; in CI, where `.ci/run` installs or grants
// what it needs and sets the suite's DROVER_REQUIRE_* variable to 1, it runs and fails on what is
// missing, so a lost install step or privilege can never pass as green.

/**
 * True when a suite should skip: `reason` says what this machine lacks (undefined: nothing), and
 * `requireVar` is not `1`.
 */
export function skipUnlessRequired(what: string, reason: string | undefined, requireVar: string): boolean {
  if (reason === undefined || process.env[requireVar] === '1') return false;
  console.warn(`Skipping ${what}: ${reason} (${requireVar}=1 makes this a failure, as in CI).`);
  return true;
}
