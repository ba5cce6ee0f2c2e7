#!/usr/bin/env node
// Checks the import graph of every workspace package's src/ (docs/decisions/0013-manager-layout.md,
// 0020-daemon-layout.md):
//
// 1. No import cycle among a package's own files, `import type` included: a type-only cycle is a
//    design cycle still, and the first value import added to it becomes an ESM initialisation bug.
// 2. The rollout engine's domain (packages/manager/src/rollouts/) imports no store implementation:
//    nothing under packages/manager/src/store/<impl>/ (sqlite/ today, postgres/ later), only the
//    Store interface beside them.
// 3. droverd's CLI is its top: nothing in daemon/src/ but bin.ts and cli/ imports cli/. And the
//    launcher (daemon/src/launcher/, installed once and never updated) reaches nothing, directly or
//    through other files, that talks to the manager, runs the agent or drives an update: not
//    daemon.ts, cli/, agent/, manager-link/, update/machine.ts (docs/decisions/0020-daemon-layout.md).
// 4. Packages depend one way: protocol on nothing of ours; agent and manager on protocol; daemon on
//    protocol and agent; cli on protocol and manager. Checked in the sources (by package name or by
//    a relative path into another package) and in package.json's runtime dependencies.
// 5. A package imported by a subpath (`@drover/protocol/internal`) lists that subpath in its
//    package.json `exports`, so the import resolves from the built package and from its tarball,
//    not only through the tsconfig paths and vitest aliases the repository adds. Checked in every
//    workspace and in test/, bench/, examples/ and scripts/.
// 6. `/internal` entries have no semver guarantee and are for drover's own packages, tests and
//    tools (docs/decisions/0019-protocol-public-surface.md): examples/, which users copy, never
//    import one.
//
// Plain Node, no dependency. Exit 0 when the graph is clean; else exit 1 with one line per problem.
// Usage: node scripts/check-imports.mjs [repo root]

import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), '..'));

// Each workspace (by its directory) and the workspaces it may import. A workspace missing here is
// a problem: a new package must take its place in the graph.
const allowed = {
  'packages/protocol': [],
  'packages/http': ['packages/protocol'],
  'packages/agent': ['packages/protocol'],
  'packages/manager': ['packages/protocol', 'packages/http'],
  'packages/cli': ['packages/protocol', 'packages/http', 'packages/manager'],
  daemon: ['packages/protocol', 'packages/http', 'packages/agent'],
};

// Files of one package that must not import files of another part of it. `from`: a path prefix, or
// a pattern of the importing file's repo-relative path.
const forbidden = [
  {
    from: 'packages/manager/src/rollouts/',
    to: /^packages\/manager\/src\/store\/[^/]+\//,
    why: 'the rollout domain imports the Store interface (store/store.ts, store/records.ts), never a store implementation',
  },
  {
    // Unit tests (*.test.ts) are left out of both droverd rules: they are not the product.
    from: /^daemon\/src\/(?!cli\/|bin\.ts$|.*\.test\.ts$)/,
    to: /^daemon\/src\/cli\//,
    why: "droverd's CLI is its top: only bin.ts and cli/ import cli/",
  },
  {
    from: /^daemon\/src\/launcher\/(?!.*\.test\.ts$)/,
    to: /^daemon\/src\/(daemon\.ts$|cli\/|agent\/|manager-link\/|update\/machine\.ts$)/,
    why: 'the launcher is installed once and never updated: it decides a boot from the journal and the release store, and imports nothing that talks to the manager, runs the agent or drives an update',
    // Its bundle holds everything it reaches, so an indirect import counts too.
    transitive: true,
  },
];
const matches = (pattern, path) => (typeof pattern === 'string' ? path.startsWith(pattern) : pattern.test(path));

const sourceExtensions = ['.ts', '.mts', '.tsx', '.js', '.mjs'];

// Folders outside the workspaces whose imports of workspace packages rules 5 and 6 check.
const toolDirs = ['test', 'bench', 'examples', 'scripts'];

/** Repo-relative path with forward slashes. */
const rel = (path) => relative(root, path).split(sep).join('/');

function walk(dir, out = []) {
  for (const entry of readdirSync(dir)) {
    if (entry === 'node_modules' || entry === 'dist') continue;
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) walk(path, out);
    else if (sourceExtensions.some((ext) => entry.endsWith(ext)) && !entry.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

/** Blanks comments (keeping line breaks and string literals), so commented-out imports do not count. */
function stripComments(text) {
  return text.replace(/\/\*[\s\S]*?\*\/|\/\/[^\n]*|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"|`(?:\\.|[^`\\])*`/g, (match) =>
    match.startsWith('/') ? match.replace(/[^\n]/g, ' ') : match,
  );
}

/** The specifiers a module imports: `import ... from`, `import type ... from`, `export ... from`, `import '...'`, `import('...')`. */
function specifiers(text) {
  const code = stripComments(text);
  const found = [];
  const patterns = [
    // import x from '...'; import type { A } from '...'; export { a } from '...'; export * from '...' (across lines too)
    /(?:^|[;\n}])\s*(?:import|export)\s+(?:type\s+)?[\w*{}\s,$]*?\bfrom\s*(['"])([^'"\n]+)\1/g,
    // import '...' (side effects only)
    /(?:^|[;\n}])\s*import\s*(['"])([^'"\n]+)\1/g,
    // import('...')
    /\bimport\s*\(\s*(['"])([^'"\n]+)\1\s*\)/g,
  ];
  for (const pattern of patterns) for (const match of code.matchAll(pattern)) found.push(match[2]);
  return found;
}

/** The file a relative specifier names (`./x.js` is `./x.ts` in the sources), or undefined. */
function resolveRelative(fromFile, spec) {
  const base = resolve(dirname(fromFile), spec);
  const stem = base.replace(/\.(m?js|jsx)$/, '');
  const candidates = [base, `${stem}.ts`, `${stem}.mts`, `${stem}.tsx`, `${stem}.js`, `${stem}.mjs`, join(base, 'index.ts'), join(base, 'index.js')];
  return candidates.find((path) => existsSync(path) && statSync(path).isFile());
}

/** The package name and subpath (`.`, `./internal`) of a bare specifier. */
function splitSpecifier(spec) {
  const parts = spec.split('/');
  const size = spec.startsWith('@') ? 2 : 1;
  const rest = parts.slice(size).join('/');
  return { name: parts.slice(0, size).join('/'), subpath: rest === '' ? '.' : `./${rest}` };
}

/** True when package.json `exports` (a string, or a map whose keys may hold one `*`) exposes `subpath`. */
function exportsSubpath(pkg, subpath) {
  const map = pkg.exports;
  if (map === undefined) return true; // no exports map: every path resolves
  if (typeof map === 'string' || Array.isArray(map)) return subpath === '.';
  return Object.keys(map).some((key) => {
    const star = key.indexOf('*');
    if (star === -1) return key === subpath;
    const [before, after] = [key.slice(0, star), key.slice(star + 1)];
    return subpath.length > before.length + after.length && subpath.startsWith(before) && subpath.endsWith(after);
  });
}

function workspaces() {
  const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  return (manifest.workspaces ?? []).map((dir) => {
    const pkg = JSON.parse(readFileSync(join(root, dir, 'package.json'), 'utf8'));
    return { dir: dir.replace(/\/$/, ''), name: pkg.name, pkg };
  });
}

/**
 * The shortest import path from `start` to a file `wanted` accepts (`start` itself only when an import leads back
 * to it), going through files `within` accepts; undefined when there is none.
 */
function shortestPath(start, graph, wanted, within = () => true) {
  const parent = new Map([[start, undefined]]);
  const queue = [start];
  while (queue.length > 0) {
    const node = queue.shift();
    for (const next of graph.get(node) ?? []) {
      if (wanted(next)) {
        const path = [next];
        for (let at = node; at !== undefined; at = parent.get(at)) path.unshift(at);
        return path;
      }
      if (within(next) && !parent.has(next)) {
        parent.set(next, node);
        queue.push(next);
      }
    }
  }
  return undefined;
}

/** One cycle through `start` inside the strongly connected component `members`, as a path back to `start`. */
function cycleThrough(start, graph, members) {
  return shortestPath(start, graph, (file) => file === start, (file) => members.has(file)) ?? [start, start];
}

/** Strongly connected components (Tarjan) that hold a cycle: two files or more, or a file importing itself. */
function cycles(graph) {
  let index = 0;
  const stack = [];
  const state = new Map();
  const found = [];
  const visit = (node) => {
    state.set(node, { index, low: index, onStack: true });
    index++;
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      if (!state.has(next)) {
        visit(next);
        state.get(node).low = Math.min(state.get(node).low, state.get(next).low);
      } else if (state.get(next).onStack) {
        state.get(node).low = Math.min(state.get(node).low, state.get(next).index);
      }
    }
    if (state.get(node).low === state.get(node).index) {
      const component = [];
      let member;
      do {
        member = stack.pop();
        state.get(member).onStack = false;
        component.push(member);
      } while (member !== node);
      if (component.length > 1 || (graph.get(node) ?? new Set()).has(node)) found.push(component.sort());
    }
  };
  for (const node of [...graph.keys()].sort()) if (!state.has(node)) visit(node);
  return found;
}

const problems = [];
const all = workspaces();
const byName = new Map(all.map((ws) => [ws.name, ws]));
const ownerOf = (path) => all.find((ws) => path === ws.dir || path.startsWith(`${ws.dir}/`));

for (const ws of all) {
  const permitted = allowed[ws.dir];
  if (permitted === undefined) {
    problems.push(`${ws.dir}: a workspace scripts/check-imports.mjs does not place in the package graph; add it to \`allowed\``);
    continue;
  }
  const mayImport = (other) => other.dir === ws.dir || permitted.includes(other.dir);
  const deps = { ...ws.pkg.dependencies, ...ws.pkg.peerDependencies, ...ws.pkg.optionalDependencies };
  for (const name of Object.keys(deps)) {
    const other = byName.get(name);
    if (other !== undefined && !mayImport(other)) problems.push(`${ws.dir}/package.json: depends on ${name} (${other.dir}), which ${ws.dir} may not import`);
  }

  const srcDir = join(root, ws.dir, 'src');
  if (!existsSync(srcDir)) continue;
  const graph = new Map();
  for (const file of walk(srcDir)) {
    const from = rel(file);
    const edges = new Set();
    graph.set(from, edges);
    for (const spec of specifiers(readFileSync(file, 'utf8'))) {
      if (spec.startsWith('.')) {
        const target = resolveRelative(file, spec);
        if (target === undefined) continue; // the typecheck reports a missing module
        const to = rel(target);
        const owner = ownerOf(to);
        if (owner !== undefined && owner.dir !== ws.dir && !mayImport(owner)) problems.push(`${from}: imports ${spec} (${owner.dir}), which ${ws.dir} may not import`);
        if (to.startsWith(`${ws.dir}/src/`)) edges.add(to);
        for (const rule of forbidden) {
          if (matches(rule.from, from) && rule.to.test(to)) problems.push(`${from}: imports ${to}: ${rule.why}`);
        }
        continue;
      }
      const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0];
      const other = byName.get(name);
      if (other !== undefined && !mayImport(other)) problems.push(`${from}: imports ${spec} (${other.dir}), which ${ws.dir} may not import`);
    }
  }
  for (const rule of forbidden.filter((r) => r.transitive === true)) {
    for (const start of [...graph.keys()].sort()) {
      if (!matches(rule.from, start)) continue;
      const path = shortestPath(start, graph, (file) => rule.to.test(file));
      // A direct import is reported above already.
      if (path !== undefined && path.length > 2) problems.push(`${start}: reaches ${path.at(-1)} through ${path.slice(1, -1).join(' -> ')}: ${rule.why}`);
    }
  }
  for (const component of cycles(graph)) {
    const members = new Set(component);
    const path = cycleThrough(component[0], graph, members);
    const strip = (file) => file.slice(`${ws.dir}/src/`.length);
    problems.push(
      `${ws.dir}/src: import cycle ${path.map(strip).join(' -> ')}` + (component.length > path.length - 1 ? ` (${component.length} files in the cycle: ${component.map(strip).join(', ')})` : ''),
    );
  }
}

// Rules 5 and 6: subpath imports resolve through the exports map; examples/ import no internal entry.
for (const dir of [...all.map((ws) => ws.dir), ...toolDirs]) {
  if (!existsSync(join(root, dir))) continue;
  for (const file of walk(join(root, dir))) {
    const from = rel(file);
    for (const spec of specifiers(readFileSync(file, 'utf8'))) {
      if (spec.startsWith('.') || spec.startsWith('node:')) continue;
      const { name, subpath } = splitSpecifier(spec);
      const other = byName.get(name);
      if (other === undefined) continue;
      if (!exportsSubpath(other.pkg, subpath)) {
        problems.push(`${from}: imports ${spec}, but ${other.dir}/package.json does not export ${subpath}; add it to "exports" or import the package's entry`);
      }
      if (from.startsWith('examples/') && /(^|\/)internal(\/|$)/.test(subpath.slice(2))) {
        problems.push(`${from}: imports ${spec}: an /internal entry has no semver guarantee, and examples are what users copy; use the public entry`);
      }
    }
  }
}

if (problems.length > 0) {
  for (const problem of problems) console.error(problem);
  console.error(`check-imports: ${problems.length} problem${problems.length === 1 ? '' : 's'} (rules: docs/decisions/0013-manager-layout.md, 0019-protocol-public-surface.md, 0020-daemon-layout.md)`);
  process.exit(1);
}
console.log(`check-imports: ${all.length} packages, no cycle, dependencies point one way`);
