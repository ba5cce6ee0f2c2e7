// Sets drover's one version. The root package.json's "version" is the source; this writes it into
// the workspace packages: their package.json "version", every dependency of one on another
// (an exact version: they are released together), and the line
// `export const PACKAGE_VERSION = '...';` of any source file (src/**/*.ts) that has one (the
// version a package reports, compiled in); then it refreshes package-lock.json.
// test/packaging/version.test.ts fails when any of these drifts from the root.
//
//   node scripts/set-version.js [VERSION]     (no VERSION: propagate the root's current one)
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const readJson = (path) => JSON.parse(readFileSync(path, 'utf8'));
const writeJson = (path, value) => writeFileSync(path, `${JSON.stringify(value, null, 2)}\n`);

const VERSION_LITERAL = /^export const PACKAGE_VERSION = '[^']*';$/m;

/** Every .ts file under dir (tests included: harmless, none holds the line). */
function* sources(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && entry.name.endsWith('.ts')) yield join(entry.parentPath ?? entry.path, entry.name);
  }
}

const rootPath = join(root, 'package.json');
const rootPkg = readJson(rootPath);
const version = process.argv[2] ?? rootPkg.version;
// A plain semver (with an optional pre-release or build suffix): it lands in a TS string literal and in npm ranges.
if (typeof version !== 'string' || !/^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/.test(version)) {
  process.stderr.write(`set-version: "${String(version)}" is not a version such as 1.2.3 or 1.2.3-rc.1\n`);
  process.exit(2);
}
rootPkg.version = version;
writeJson(rootPath, rootPkg);

const workspaces = rootPkg.workspaces.map((dir) => ({ dir, pkg: readJson(join(root, dir, 'package.json')) }));
const names = new Set(workspaces.map((w) => w.pkg.name));
for (const { dir, pkg } of workspaces) {
  pkg.version = version;
  for (const field of ['dependencies', 'devDependencies', 'peerDependencies', 'optionalDependencies']) {
    for (const name of Object.keys(pkg[field] ?? {})) if (names.has(name)) pkg[field][name] = version;
  }
  writeJson(join(root, dir, 'package.json'), pkg);
  for (const file of sources(join(root, dir, 'src'))) {
    const text = readFileSync(file, 'utf8');
    if (VERSION_LITERAL.test(text)) writeFileSync(file, text.replace(VERSION_LITERAL, `export const PACKAGE_VERSION = '${version}';`));
  }
}

execFileSync('npm', ['install', '--package-lock-only', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' });
process.stdout.write(`drover ${version}: root and ${workspaces.map((w) => w.pkg.name).join(', ')}\n`);
