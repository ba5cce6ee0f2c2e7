// Failpoints for the crash-safety tests: a named point in each step of the update state machine,
// and around each agent spawn. Inert unless the environment names one (DROVER_FAILPOINT=swapped, or
// several, comma-separated); then droverd SIGKILLs itself at that point, exactly as a power cut or an
// OOM kill would stop it. `<step>` fires right after the journal recorded the step, `<step>:after`
// once its action is done; `agent:before-intent`, `agent:intent-written`, `agent:spawned`,
// `agent:before-record` and `agent:recorded` bracket each agent spawn (supervisor.ts).
//
// A point may be qualified: `name@<version>` fires only where the point passes that version (the
// agent points pass the version being started), `name#<n>` only at its n-th matching pass in this
// process, e.g. `agent:spawned@1.0.0#2`: the second start of 1.0.0 (a rollback's, after the boot's).

/** The environment variable that arms failpoints (a comma-separated list of point names), for crash tests. */
export const FAILPOINT_ENV = 'DROVER_FAILPOINT';

/** Points in the update path where a crash test kills the process (SIGKILL), as a power cut would. */
export interface Failpoints {
  /** Kills the process if `name` is armed (unqualified, or qualified by `version` and this pass's count). */
  hit(name: string, version?: string): void;
  readonly armed: readonly string[];
}

interface ArmedPoint {
  name: string;
  version: string | undefined;
  nth: number | undefined;
  passes: number;
}

/** `name[@version][#n]`; a spec that does not parse is taken as a plain name (it then never fires). */
function parseArmed(spec: string): ArmedPoint {
  const match = /^([^@#]+)(?:@([^@#]+))?(?:#([1-9][0-9]*))?$/.exec(spec);
  if (match === null) return { name: spec, version: undefined, nth: undefined, passes: 0 };
  const [, name = spec, version, nth] = match;
  return { name, version, nth: nth === undefined ? undefined : Number(nth), passes: 0 };
}

/** The failpoints {@link FAILPOINT_ENV} arms; none when it is unset. */
export function failpointsFromEnv(env: Readonly<Record<string, string | undefined>> = process.env, kill: () => void = killSelf): Failpoints {
  const armed = (env[FAILPOINT_ENV] ?? '')
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name !== '');
  const points = armed.map(parseArmed);
  return {
    armed,
    hit: (name, version) => {
      for (const point of points) {
        if (point.name !== name || (point.version !== undefined && point.version !== version)) continue;
        point.passes += 1;
        if (point.nth === undefined || point.nth === point.passes) kill();
      }
    },
  };
}

function killSelf(): void {
  process.kill(process.pid, 'SIGKILL');
}

/** No failpoint armed: what a daemon outside a crash test runs with. */
export const noFailpoints: Failpoints = { armed: [], hit: () => undefined };
