// Failpoints for the crash-safety tests: a named point in each step of the update state machine.
// Inert unless the environment names one (DROVER_FAILPOINT=swapped, or several, comma-separated);
// then droverd SIGKILLs itself at that point, exactly as a power cut or an OOM kill would stop it.
// `<step>` fires right after the journal recorded the step, `<step>:after` once its action is done.

export const FAILPOINT_ENV = 'DROVER_FAILPOINT';

export interface Failpoints {
  /** Kills the process if `name` is armed. */
  hit(name: string): void;
  readonly armed: readonly string[];
}

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

export const noFailpoints: Failpoints = { armed: [], hit: () => undefined };
