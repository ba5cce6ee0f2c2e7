// Failpoints for the crash-safety tests: a named point in each step of the update state machine.
// Inert unless the environment names one (DROVER_FAILPOINT=swapped, or several, comma-separated);
// then droverd SIGKILLs itself at that point, exactly as a power cut or an OOM kill would stop it.
// `<step>` fires right after the journal recorded the step, `<step>:after` once its action is done.

/** The environment variable that arms failpoints (a comma-separated list of step names), for crash tests. */
export const FAILPOINT_ENV = 'DROVER_FAILPOINT';

/** Points in the update path where a crash test kills the process (SIGKILL), as a power cut would. */
export interface Failpoints {
  /** Kills the process if `name` is armed. */
  hit(name: string): void;
  readonly armed: readonly string[];
}

/** The failpoints {@link FAILPOINT_ENV} arms; none when it is unset. */
export function failpointsFromEnv(env: Readonly<Record<string, string | undefined>> = process.env, kill: () => void = killSelf): Failpoints {
  const armed = (env[FAILPOINT_ENV] ?? '')
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name !== '');
  return {
    armed,
    hit: (name) => {
      if (armed.includes(name)) kill();
    },
  };
}

function killSelf(): void {
  process.kill(process.pid, 'SIGKILL');
}

/** No failpoint armed: what a daemon outside a crash test runs with. */
export const noFailpoints: Failpoints = { armed: [], hit: () => undefined };
