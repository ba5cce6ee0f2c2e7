import { exitCodes } from '../config.js';
import { ReleaseStore, checkInstalledRelease } from '../releases/store.js';
import type { ReleaseCheck } from '../releases/store.js';
import { loadTrustPolicy } from '../releases/trust.js';
import { loadContext } from './context.js';
import type { CliCommand } from './framework.js';

export const verifyCommand: CliCommand = {
  name: 'verify',
  summary: 'Verify every installed release against its signed manifest and trust.json.',
  usage: '[--json]',
  description: `Checks each releases/<artifact>/<version>/: the envelope's signatures against trust.json, the artifact, version and platform it names, and the file's size and SHA-256. Exits ${exitCodes.verifyFailed} when one does not verify.`,
  options: {},
  async run(input) {
    const { settings, paths } = await loadContext(input);
    const store = new ReleaseStore(paths);
    const policy = await loadTrustPolicy(paths.trust).catch(() => undefined);
    const checks: ReleaseCheck[] = [];
    for (const artifact of ['agent', 'daemon'] as const) {
      const current = await store.currentVersion(artifact);
      for (const release of await store.list(artifact)) {
        checks.push({ ...(await checkInstalledRelease(release, policy, settings.platform)), current: release.version === current });
      }
    }
    const failed = checks.filter((check) => !check.ok);
    const text = [
      ...checks.map(
        (c) =>
          `${c.ok ? 'OK  ' : 'FAIL'} ${c.artifact} ${c.version}${c.current ? ' (current)' : ''}${c.signed ? '' : ' (unsigned, installed by package)'}${c.expired === true ? ' (expired since install)' : ''}${c.ok ? '' : `: ${c.code ?? ''} ${c.message ?? ''}`}`,
      ),
      checks.length === 0 ? 'No release is installed.' : `${checks.length - failed.length} of ${checks.length} installed release(s) verify.`,
    ].join('\n');
    return { data: { ok: failed.length === 0, releases: checks }, text, exitCode: failed.length === 0 ? exitCodes.ok : exitCodes.verifyFailed };
  },
};
