import { createHash, randomBytes } from 'node:crypto';
import { copyFile, readFile, rm } from 'node:fs/promises';
import { basename } from 'node:path';
import { parseEnvelope, parseVersion, verifyArtifactStream, verifyRelease } from '@drover/protocol';
import { readFileChunks } from '@drover/protocol/internal';
import { DaemonError } from '../errors.js';
import { acquireStateLock } from '../host/lock.js';
import { ReleaseStore } from '../releases/store.js';
import { loadTrustPolicy } from '../releases/trust.js';
import { loadContext } from './context.js';
import { stringOption } from './framework.js';
import type { CliCommand } from './framework.js';

export const installCommand: CliCommand = {
  name: 'install',
  summary: 'Install a release from local files and make it current (first install, or repair). droverd must be stopped.',
  usage: '[--artifact agent|daemon] (--release FILE.release.json | --unsigned --version V) FILE',
  description:
    'A signed release is verified exactly as an update is (trust.json, artifact, platform, expiry, no downgrade unless --allow-downgrade, size and SHA-256 of the copy that is installed). The release that is current already, with the same bytes, is verified and then changes nothing (a re-run). --unsigned is only for the daemon bundle a package installs (install.sh): its trust comes from the package.',
  options: {
    artifact: { type: 'string', arg: 'NAME', help: 'agent (default) or daemon.' },
    release: { type: 'string', arg: 'FILE', help: 'The signed release envelope (FILE.release.json from `drover release sign`).' },
    unsigned: { type: 'boolean', help: 'Install the daemon bundle without a signed release (install.sh).' },
    version: { type: 'string', arg: 'V', help: 'With --unsigned: the version of the bundle.' },
    'allow-downgrade': { type: 'boolean', help: 'Install a version below the current one.' },
  },
  arguments: ['<FILE>'],
  async run(input) {
    const { settings, paths } = await loadContext(input);
    const artifact = stringOption(input.values, 'artifact') ?? 'agent';
    if (artifact !== 'agent' && artifact !== 'daemon') throw new DaemonError('USAGE_ERROR', '--artifact must be agent or daemon.');
    const file = input.positionals[0] ?? '';
    const releasePath = stringOption(input.values, 'release');
    const unsigned = input.values['unsigned'] === true;
    if ((releasePath === undefined) === !unsigned) throw new DaemonError('USAGE_ERROR', 'Pass exactly one of --release FILE.release.json and --unsigned.');
    if (unsigned && artifact !== 'daemon') throw new DaemonError('USAGE_ERROR', '--unsigned installs only the daemon bundle; an agent must come as a signed release.');

    const lock = await acquireStateLock(paths.state, { lockPath: paths.lock, ownerPath: paths.lockOwner, onCompromised: () => {
        // a one-shot command: nothing to stop
      },
    });
    const store = new ReleaseStore(paths);
    const commandId = `install-${randomBytes(6).toString('hex')}`;
    const part = store.partPath(commandId);
    try {
      await store.ensureLayout();
      const current = (await store.currentVersion(artifact)) ?? null;
      // The file is copied into the private staging directory first; the copy is what is verified and installed.
      await copyFile(file, part);
      let manifest: { version: string; file: { name: string; size: number; sha256: string } };
      let envelope;
      if (releasePath !== undefined) {
        envelope = parseEnvelope(await readFile(releasePath, 'utf8'));
        const policy = await loadTrustPolicy(paths.trust);
        const expect = { artifact, platform: settings.platform, rollback: input.values['allow-downgrade'] === true };
        // The version that is current already (a re-run of the same install) is no downgrade: it is
        // verified like any release, then installs nothing if it is the same bytes (below). Any other
        // version at or below the current one is still refused without --allow-downgrade.
        let verified = verifyRelease(envelope, policy, expect);
        if (current !== null && verified.version !== current) verified = verifyRelease(envelope, policy, { ...expect, runningVersion: current });
        await verifyArtifactStream(readFileChunks(part, { limit: verified.file.size + 1 }), verified.file);
        manifest = verified;
      } else {
        const version = stringOption(input.values, 'version');
        if (version === undefined) throw new DaemonError('USAGE_ERROR', '--unsigned needs --version.');
        parseVersion(version);
        const hash = createHash('sha256');
        let size = 0;
        for await (const chunk of readFileChunks(part)) {
          hash.update(chunk);
          size += chunk.length;
        }
        manifest = { version, file: { name: basename(file), size, sha256: hash.digest('hex') } };
      }
      if (current !== null && manifest.version === current) {
        // A re-run: the same bytes are a no-op (store.install keeps them, current stays); other bytes
        // under the same version are RELEASE_CONFLICT, as for any update.
        const installed = await store.install({ commandId, artifact, manifest, envelope, source: part });
        const data = { artifact, version: installed.version, previous: await store.previousVersion(artifact) ?? null, dir: installed.dir, signed: installed.signed, changed: false };
        return { data, text: `${artifact} ${installed.version} is already installed and current in ${installed.dir}; nothing changed.` };
      }
      const installed = await store.install({ commandId, artifact, manifest, envelope, source: part });
      await store.activate(artifact, installed.version, current);
      const data = { artifact, version: installed.version, previous: current, dir: installed.dir, signed: installed.signed, changed: true };
      return { data, text: `Installed ${artifact} ${installed.version}${current === null ? '' : ` (previous ${current})`} in ${installed.dir}.` };
    } finally {
      await rm(part, { force: true });
      await lock.release();
    }
  },
};
