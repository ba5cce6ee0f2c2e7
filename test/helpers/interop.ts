/**
 * Whether an interop suite whose peer tool is missing should skip. On a developer's machine it
 * skips (after saying why); in CI (`DROVER_REQUIRE_INTEROP=1`) it runs and fails, so a missing
 * install step can never pass as green.
 */
export function skipWhenMissing(missing: boolean): boolean {
  return missing && process.env['DROVER_REQUIRE_INTEROP'] !== '1';
}
