import { chmod, mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { RELEASE_PAYLOAD_TYPE, verifyArtifactStream, verifyEnvelope } from '@drover/protocol';
import { readFileChunks } from '@drover/protocol/internal';
import type { DsseEnvelope, ReleasePayload, TrustPolicy } from '@drover/protocol';
import { DaemonError } from '../errors.js';
import { ensureDir, fsyncDir, pathExists, readJsonFile, writeJsonAtomic } from '../host/fs-atomic.js';
import type { DaemonPaths } from '../host/paths.js';
import type { Artifact } from '../update/journal.js';
import { pointSymlink, readSymlink, removeSymlink } from './swap.js';

// releases/<artifact>/<version>/ holds one installed release: the verified file, the signed
// envelope it was verified against (release.json) and installed.json. A release directory is
// assembled in staging/ and renamed into releases/ in one step, so releases/ never holds a
// half-installed release; once there it is never modified, only removed when pruned.
//
// Entry point (docs/install.md): the release's single file, named by the manifest. A file ending
// in .js, .mjs or .cjs is run with the Node.js that runs droverd; any other file is executed.

export const RELEASE_ENVELOPE_FILE = 'release.json';
export const INSTALLED_FILE = 'installed.json';
const RESERVED_NAMES = new Set(['.', '..', RELEASE_ENVELOPE_FILE, INSTALLED_FILE]);
const VERSION_SEGMENT = /^[A-Za-z0-9][A-Za-z0-9.+_-]{0,127}$/;
const NODE_ENTRY = /\.(?:m|c)?js$/;

/** An installed release's artifact file: its name, size and SHA-256. */
export interface InstalledFile {
  name: string;
  size: number; // bytes
  sha256: string;
}

/** installed.json: what the directory holds; `signed: false` for a release installed by a package (install.sh). */
export interface InstalledRecord {
  schema: 'drover.installed/v1';
  artifact: Artifact;
  version: string;
  file: InstalledFile;
  signed: boolean;
  installedAt: string;
}

/** An installed release with where its files are and how its entry runs. */
export interface InstalledRelease extends InstalledRecord {
  dir: string;
  entry: string;
  /** true when the entry is run with Node.js (a .js/.mjs/.cjs bundle). */
  node: boolean;
}

/** Refuses a version or file name that could escape its directory. */
export function checkNames(version: string, fileName: string): void {
  // path traversal: a signed but hostile name must not write outside releases/<artifact>/<version>/.
  if (!VERSION_SEGMENT.test(version)) {
    throw new DaemonError('COMMAND_INVALID', `The release version "${version.slice(0, 64)}" cannot be used as a directory name. Publish it under a plain semver.`);
  }
  if (RESERVED_NAMES.has(fileName) || fileName.includes('/') || fileName.includes('\0')) {
    throw new DaemonError('COMMAND_INVALID', `The release file name "${fileName.slice(0, 64)}" is not allowed. Publish it under a plain file name.`);
  }
}

/** The releases on disk under the state directory (one directory per version), and the `current` and `previous` symlinks. */
export class ReleaseStore {
  readonly #paths: DaemonPaths;

  constructor(paths: DaemonPaths) {
    this.#paths = paths;
  }

  releaseDir(artifact: Artifact, version: string): string {
    return join(this.#paths.releases, artifact, version);
  }

  /** The staging path of a command's download. */
  partPath(commandId: string): string {
    return join(this.#paths.staging, `${commandId}.part`);
  }

  async ensureLayout(): Promise<void> {
    for (const dir of [this.#paths.releases, this.#paths.current, this.#paths.previous]) await ensureDir(dir, 0o755);
    await ensureDir(this.#paths.staging, 0o700);
  }

  /** The release in releases/<artifact>/<version>, or undefined when absent or incomplete. */
  async read(artifact: Artifact, version: string): Promise<InstalledRelease | undefined> {
    const dir = this.releaseDir(artifact, version);
    let record: unknown;
    try {
      record = await readJsonFile(join(dir, INSTALLED_FILE), 64 * 1024);
    } catch {
      return undefined;
    }
    if (typeof record !== 'object' || record === null) return undefined;
    const r = record as Partial<InstalledRecord>;
    if (r.schema !== 'drover.installed/v1' || r.version !== version || r.artifact !== artifact || typeof r.file?.name !== 'string') return undefined;
    const entry = join(dir, r.file.name);
    return { ...(r as InstalledRecord), dir, entry, node: NODE_ENTRY.test(r.file.name) };
  }

  /** The version `current/<artifact>` points at. */
  async currentVersion(artifact: Artifact): Promise<string | undefined> {
    const target = await readSymlink(join(this.#paths.current, artifact));
    return target === undefined ? undefined : basename(target);
  }

  async previousVersion(artifact: Artifact): Promise<string | undefined> {
    const target = await readSymlink(join(this.#paths.previous, artifact));
    return target === undefined ? undefined : basename(target);
  }

  async current(artifact: Artifact): Promise<InstalledRelease | undefined> {
    const version = await this.currentVersion(artifact);
    return version === undefined ? undefined : this.read(artifact, version);
  }

  /** Checks an installed release's file against a manifest's size and SHA-256 (reads at most size + 1 bytes). */
  async verifyFile(release: InstalledRelease, file: InstalledFile): Promise<void> {
    await verifyArtifactStream(readFileChunks(release.entry, { limit: file.size + 1 }), file);
  }

  /**
   * Installs a verified download: moves the .part file (the very bytes that were verified) into a
   * release directory assembled in staging/, then renames that directory into releases/.
   * Idempotent: a release already installed with the same digest is kept as is.
   */
  async install(input: { commandId: string; artifact: Artifact; manifest: Pick<ReleasePayload, 'version' | 'file'>; envelope: DsseEnvelope | undefined; source: string }): Promise<InstalledRelease> {
    const { artifact, manifest } = input;
    checkNames(manifest.version, manifest.file.name);
    const existing = await this.read(artifact, manifest.version);
    if (existing !== undefined) {
      // immutability: an installed release is never overwritten; the same bytes again are fine.
      if (existing.file.sha256 !== manifest.file.sha256 || existing.file.size !== manifest.file.size) {
        throw new DaemonError(
          'RELEASE_CONFLICT',
          `Version ${manifest.version} of ${artifact} is already installed with other content. Publish the new build under a new version.`,
        );
      }
      await rm(input.source, { force: true });
      return existing;
    }
    const finalDir = this.releaseDir(artifact, manifest.version);
    if (await pathExists(finalDir)) {
      // A directory without a valid installed.json was never complete (it cannot be: it arrives by
      // rename); remove it rather than trust it.
      await rm(finalDir, { recursive: true, force: true });
    }
    const assembly = join(this.#paths.staging, `${input.commandId}.d`);
    await rm(assembly, { recursive: true, force: true });
    await mkdir(assembly, { mode: 0o755 });
    await chmod(assembly, 0o755); // not masked by the unit's UMask: the agent's user reads its release
    const entry = join(assembly, manifest.file.name);
    await rename(input.source, entry);
    await chmod(entry, NODE_ENTRY.test(manifest.file.name) ? 0o444 : 0o555);
    if (input.envelope !== undefined) await writeJsonAtomic(join(assembly, RELEASE_ENVELOPE_FILE), input.envelope, { mode: 0o444 });
    const record: InstalledRecord = {
      schema: 'drover.installed/v1',
      artifact,
      version: manifest.version,
      file: { name: manifest.file.name, size: manifest.file.size, sha256: manifest.file.sha256 },
      signed: input.envelope !== undefined,
      installedAt: new Date().toISOString(),
    };
    await writeJsonAtomic(join(assembly, INSTALLED_FILE), record, { mode: 0o444 });
    await fsyncDir(assembly);
    await ensureDir(join(this.#paths.releases, artifact));
    await rename(assembly, finalDir);
    await fsyncDir(join(this.#paths.releases, artifact));
    await fsyncDir(this.#paths.staging);
    const installed = await this.read(artifact, manifest.version);
    if (installed === undefined) throw new DaemonError('IO_ERROR', `The release ${artifact} ${manifest.version} vanished right after it was installed.`);
    return installed;
  }

  /** current/<artifact> := version, keeping previous/<artifact> := the version it replaces. */
  async activate(artifact: Artifact, version: string, replaced: string | null): Promise<void> {
    if (replaced !== null && replaced !== version) await pointSymlink(join(this.#paths.previous, artifact), join('..', 'releases', artifact, replaced));
    await pointSymlink(join(this.#paths.current, artifact), join('..', 'releases', artifact, version));
  }

  /** current/<artifact> := version (a rollback), or removes it (null: nothing was installed before). */
  async pointCurrent(artifact: Artifact, version: string | null): Promise<void> {
    const link = join(this.#paths.current, artifact);
    if (version === null) await removeSymlink(link);
    else await pointSymlink(link, join('..', 'releases', artifact, version));
  }

  /** Installed versions of an artifact, oldest install first. */
  async list(artifact: Artifact): Promise<InstalledRelease[]> {
    let names: string[];
    try {
      names = await readdir(join(this.#paths.releases, artifact));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    const releases: InstalledRelease[] = [];
    for (const name of names) {
      const release = await this.read(artifact, name);
      if (release !== undefined) releases.push(release);
    }
    return releases.sort((a, b) => a.installedAt.localeCompare(b.installedAt));
  }

  /** Removes all but the newest `keep` releases; never the current or previous one. */
  async prune(artifact: Artifact, keep: number): Promise<string[]> {
    const protectedVersions = new Set([await this.currentVersion(artifact), await this.previousVersion(artifact)]);
    const releases = await this.list(artifact);
    const removable = releases.filter((release) => !protectedVersions.has(release.version));
    const excess = releases.length - keep;
    const removed: string[] = [];
    for (const release of removable.slice(0, Math.max(0, excess))) {
      await rm(release.dir, { recursive: true, force: true });
      removed.push(release.version);
    }
    if (removed.length > 0) await fsyncDir(join(this.#paths.releases, artifact));
    return removed;
  }

  /** Removes whatever staging/ holds except the named command's files (left by crashed or refused updates). */
  async cleanStaging(keepCommandId: string | undefined): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.#paths.staging);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    for (const name of names) {
      if (keepCommandId !== undefined && (name === `${keepCommandId}.part` || name === `${keepCommandId}.d`)) continue;
      await rm(join(this.#paths.staging, name), { recursive: true, force: true });
    }
  }

  /** The size of a .part file, 0 when absent. */
  async partSize(commandId: string): Promise<number> {
    try {
      return (await stat(this.partPath(commandId))).size;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw error;
    }
  }
}

/** What `droverd verify` found of one installed release: current or not, signed or not, and whether its bytes still match. */
export interface ReleaseCheck {
  artifact: Artifact;
  version: string;
  current: boolean;
  signed: boolean;
  ok: boolean;
  code?: string;
  message?: string;
  expired?: boolean;
}

/**
 * Checks an installed release against its signed manifest: the envelope verifies against the
 * trust policy, names this artifact, version and platform, and the file's size and SHA-256 match.
 * Expiry is reported but not a failure: a release that verified when installed stays installed.
 */
export async function checkInstalledRelease(release: InstalledRelease, policy: TrustPolicy | undefined, platform: string): Promise<Omit<ReleaseCheck, 'current'>> {
  const base = { artifact: release.artifact, version: release.version, signed: release.signed };
  try {
    let manifest: ReleasePayload | undefined;
    if (release.signed) {
      if (policy === undefined) throw new DaemonError('TRUST_POLICY_MISSING', 'There is no trust policy to verify the release against.');
      const envelope = await readJsonFile(join(release.dir, RELEASE_ENVELOPE_FILE), 1024 * 1024);
      const { payload } = verifyEnvelope(envelope as DsseEnvelope, policy, RELEASE_PAYLOAD_TYPE);
      manifest = JSON.parse(Buffer.from(payload).toString('utf8')) as ReleasePayload;
      if (manifest.artifact !== release.artifact || manifest.version !== release.version || manifest.platform !== platform) {
        throw new DaemonError('VERIFY_FAILED', `The signed manifest names ${manifest.artifact} ${manifest.version} for ${manifest.platform}, not what is installed here.`);
      }
      if (manifest.file.name !== release.file.name) throw new DaemonError('VERIFY_FAILED', 'The installed file name differs from the signed manifest.');
    }
    const file = manifest?.file ?? release.file;
    await verifyArtifactStream(readFileChunks(release.entry, { limit: file.size + 1 }), file);
    const expired = manifest !== undefined && Date.parse(manifest.expiresAt) <= Date.now();
    return { ...base, ok: true, ...(expired ? { expired } : {}) };
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    return { ...base, ok: false, code: typeof code === 'string' ? code : 'VERIFY_FAILED', message: error instanceof Error ? error.message : String(error) };
  }
}
