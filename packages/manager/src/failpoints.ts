// Failpoints for the manager's crash tests, as droverd has its own (daemon/src/update/failpoints.ts):
// a named point right after a change is committed and before its answer is sent, where a test kills
// the manager (SIGKILL) as a power cut or an OOM kill would. Inert unless DROVER_MANAGER_FAILPOINT
// names the point (comma-separated for several), read once when the manager starts.

/** The environment variable that arms the manager's failpoints. */
export const MANAGER_FAILPOINT_ENV = 'DROVER_MANAGER_FAILPOINT';

let armed: ReadonlySet<string> | undefined;

/** SIGKILLs this process if `name` is armed; otherwise does nothing. */
export function failpoint(name: string): void {
  armed ??= new Set(
    (process.env[MANAGER_FAILPOINT_ENV] ?? '')
      .split(',')
      .map((point) => point.trim())
      .filter((point) => point !== ''),
  );
  if (armed.has(name)) process.kill(process.pid, 'SIGKILL');
}
