import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// drover has one version: the root package.json's. scripts/set-version.js writes it everywhere
// else; these fail when a copy drifts (a hand edit, a new package, a merge).

const root = fileURLToPath(new URL('../..', import.meta.url));
interface Manifest {
  name: string;
  version?: string;
  workspaces?: string[];
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}
const readJson = (path: string): unknown => JSON.parse(readFileSync(join(root, path), 'utf8'));

const rootManifest = readJson('package.json') as Manifest;
const version = rootManifest.version;
const workspaces = (rootManifest.workspaces ?? []).map((dir) => ({ dir, manifest: readJson(join(dir, 'package.json')) as Manifest }));
const names = new Set(workspaces.map((w) => w.manifest.name));

const VERSION_LINE = /^export const PACKAGE_VERSION = '([^']*)';$/gm;
function compiledInVersions(dir: string): { file: string; version: string }[] {
  const found: { file: string; version: string }[] = [];
  for (const entry of readdirSync(join(root, dir, 'src'), { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.ts')) continue;
    const file = join(entry.parentPath, entry.name);
    for (const match of readFileSync(file, 'utf8').matchAll(VERSION_LINE)) found.push({ file, version: match[1] ?? '' });
  }
  return found;
}

describe('one version for the six packages', () => {
  it('the root package.json names it, and the six workspaces are all there', () => {
    expect(version).toMatch(/^\d+\.\d+\.\d+/);
    expect([...names].sort()).toEqual(['@drover/agent', '@drover/cli', '@drover/http', '@drover/manager', '@drover/protocol', 'droverd']);
  });

  it('every workspace package.json has the root version', () => {
    expect(Object.fromEntries(workspaces.map((w) => [w.manifest.name, w.manifest.version]))).toEqual(
      Object.fromEntries(workspaces.map((w) => [w.manifest.name, version])),
    );
  });

  it('a package depends on another of the six at exactly the root version', () => {
    const internal: string[] = [];
    for (const { manifest } of workspaces) {
      for (const field of ['dependencies', 'devDependencies', 'peerDependencies', 'optionalDependencies'] as const) {
        for (const [name, range] of Object.entries(manifest[field] ?? {})) {
          if (names.has(name)) internal.push(`${manifest.name} ${field} ${name}@${range}`);
        }
      }
    }
    expect(internal.length).toBeGreaterThanOrEqual(6);
    expect(internal.filter((line) => !line.endsWith(`@${String(version)}`))).toEqual([]);
  });

  it('package-lock.json records the same versions', () => {
    const lock = readJson('package-lock.json') as { version?: string; packages: Record<string, { version?: string }> };
    expect(lock.version).toBe(version);
    for (const { dir, manifest } of workspaces) expect(lock.packages[dir]?.version, `${manifest.name} in package-lock.json`).toBe(version);
  });

  it('the version the CLI, the manager and droverd report is compiled in from the root version', () => {
    for (const dir of ['packages/cli', 'packages/manager', 'daemon']) {
      const found = compiledInVersions(dir);
      expect(found.length, `${dir}/src has one PACKAGE_VERSION line`).toBe(1);
      expect(found[0]?.version, found[0]?.file).toBe(version);
    }
    for (const dir of ['packages/protocol', 'packages/http', 'packages/agent']) {
      for (const { file, version: v } of compiledInVersions(dir)) expect(v, file).toBe(version);
    }
  });
});
