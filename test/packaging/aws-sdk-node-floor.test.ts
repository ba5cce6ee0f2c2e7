// drover supports Node >= 20.18, and the AWS SDK for JavaScript v3 announces that its releases
// after the first week of January 2027 require Node >= 22. The manager pins the SDK's line
// (`~3.1178.0`, docs/decisions/0025-s3-blob-store.md); this guard fails when a lockfile update
// resolves any package the manager's S3 store or KMS signer runs on to one whose engines exclude Node 20.18,
// so moving the floor is a decision, not a side effect of `npm update`.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import semver from 'semver';
import { describe, expect, it } from 'vitest';

const rootDir = fileURLToPath(new URL('../../', import.meta.url));
const nodeFloor = '20.18.0';

interface LockEntry {
  version?: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  engines?: { node?: string } | string[];
}

const lock = JSON.parse(readFileSync(`${rootDir}package-lock.json`, 'utf8')) as { packages: Record<string, LockEntry> };
const manager = JSON.parse(readFileSync(`${rootDir}packages/manager/package.json`, 'utf8')) as { engines: { node: string }; dependencies: Record<string, string> };

/** The lock entry a package `name` required from `from` resolves to (node_modules lookup, innermost first). */
function resolve(name: string, from: string): [string, LockEntry] | undefined {
  let dir = from;
  for (;;) {
    const path = `${dir === '' ? '' : `${dir}/`}node_modules/${name}`;
    const entry = lock.packages[path];
    if (entry !== undefined) return [path, entry];
    if (dir === '') return undefined;
    const at = dir.lastIndexOf('/node_modules/');
    dir = at === -1 ? '' : dir.slice(0, at);
  }
}

/** Every lock entry reached from the SDK packages the manager depends on. */
function closure(roots: string[]): Map<string, LockEntry> {
  const seen = new Map<string, LockEntry>();
  const queue: [string, string][] = roots.map((name) => [name, 'packages/manager']);
  while (queue.length > 0) {
    const [name, from] = queue.shift() as [string, string];
    const found = resolve(name, from);
    if (found === undefined) {
      if (roots.includes(name)) throw new Error(`${name} is not in package-lock.json`);
      continue; // an optional dependency for another platform
    }
    const [path, entry] = found;
    if (seen.has(path)) continue;
    seen.set(path, entry);
    for (const dep of Object.keys({ ...entry.dependencies, ...entry.optionalDependencies })) queue.push([dep, path]);
  }
  return seen;
}

describe('the AWS SDK pin (Node floor 20.18)', () => {
  const sdk = ['@aws-sdk/client-s3', '@aws-sdk/s3-request-presigner', '@aws-sdk/client-kms'];

  it('the manager depends on the SDK at the pinned ~3.1178 line, and its own floor is 20.18', () => {
    for (const name of sdk) expect(manager.dependencies[name], name).toBe('~3.1178.0');
    expect(semver.minVersion(manager.engines.node)?.version).toBe(nodeFloor);
  });

  it("every package the S3 store and the KMS signer run on, as package-lock.json resolves it, allows Node 20.18", () => {
    const packages = closure(sdk);
    expect(packages.size).toBeGreaterThan(10);
    const refused: string[] = [];
    for (const [path, entry] of packages) {
      const range = Array.isArray(entry.engines) ? undefined : entry.engines?.node;
      if (range !== undefined && !semver.satisfies(nodeFloor, range)) refused.push(`${path}@${entry.version ?? '?'} (engines.node ${range})`);
    }
    expect(refused).toEqual([]);
    for (const name of sdk) expect(semver.satisfies(lock.packages[`node_modules/${name}`]?.version ?? '', '~3.1178.0'), name).toBe(true);
  });
});
