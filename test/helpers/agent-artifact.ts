// Packages examples/agent as the `agent` artifact: one CommonJS file bundled by esbuild (run by
// droverd with node), its version written into BUILT_IN_VERSION as a release build does. Faulty
// releases for the rollback tests are the same program with its misbehaviour baked in (a line
// setting AGENT_CRASH_AT_BOOT, AGENT_START_UNHEALTHY or AGENT_BUSY_MS before it starts), since
// droverd gives every release the same environment.
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('../../', import.meta.url));
let bundle: Promise<string> | undefined;

async function bundleExampleAgent(): Promise<string> {
  const result = await build({
    entryPoints: [`${root}examples/agent/agent.ts`],
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    write: false,
    logLevel: 'silent',
    tsconfig: `${root}tsconfig.json`,
  });
  const text = result.outputFiles[0]?.text;
  if (text === undefined) throw new Error('esbuild wrote no output for examples/agent');
  return text;
}

export interface AgentArtifactOptions {
  crashAtBoot?: boolean;
  unhealthy?: boolean;
  busyMs?: number;
  /** Busy from boot until this many ms after its first busy refusal (503) of a shutdown. */
  busyAfterRefusalMs?: number;
  /** Listens only once this file exists. */
  listenWhenFile?: string;
}

/** The example agent as a release of `version` (a Buffer, the artifact's exact bytes). */
export async function agentArtifact(version: string, options: AgentArtifactOptions = {}): Promise<Buffer> {
  bundle ??= bundleExampleAgent();
  const text = await bundle;
  const marker = /BUILT_IN_VERSION = "1\.0\.0"/;
  if (!marker.test(text)) throw new Error('BUILT_IN_VERSION not found in the example agent bundle');
  const env = [
    options.crashAtBoot === true ? 'process.env.AGENT_CRASH_AT_BOOT = "1";' : '',
    options.unhealthy === true ? 'process.env.AGENT_START_UNHEALTHY = "1";' : '',
    options.busyMs === undefined ? '' : `process.env.AGENT_BUSY_MS = "${options.busyMs}";`,
    options.busyAfterRefusalMs === undefined ? '' : `process.env.AGENT_BUSY_AFTER_REFUSAL_MS = "${options.busyAfterRefusalMs}";`,
    options.listenWhenFile === undefined ? '' : `process.env.AGENT_LISTEN_WHEN_FILE = ${JSON.stringify(options.listenWhenFile)};`,
  ].join('');
  return Buffer.from(`${env}\n${text.replace(marker, `BUILT_IN_VERSION = ${JSON.stringify(version)}`)}`);
}
