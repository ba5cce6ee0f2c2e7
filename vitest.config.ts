import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const source = (path: string): string => fileURLToPath(new URL(path, import.meta.url));
const loadTests = ['test/manager/overload.test.ts'];
// The web console in a real Chromium (test/browser): its own project, so `npm run test:browser` runs it alone.
const browserTests = ['test/browser/**/*.test.ts'];

export default defineConfig({
  resolve: {
    // Tests run against the TypeScript sources; the CLI and daemon tests spawn the built output.
    // A subpath comes before its package: '@drover/protocol' would also match '@drover/protocol/internal'.
    alias: {
      '@drover/protocol/internal': source('./packages/protocol/src/internal.ts'),
      '@drover/protocol': source('./packages/protocol/src/index.ts'),
      '@drover/http': source('./packages/http/src/index.ts'),
      '@drover/agent': source('./packages/agent/src/index.ts'),
      '@drover/manager': source('./packages/manager/src/index.ts'),
    },
  },
  test: {
    // expectTypeOf/assertType checks live in *.test-d.ts files: tsc checks them (they are no-ops at runtime).
    typecheck: {
      enabled: true,
      include: ['packages/*/src/**/*.test-d.ts', 'packages/*/test/**/*.test-d.ts', 'daemon/src/**/*.test-d.ts', 'test/**/*.test-d.ts'],
      tsconfig: './tsconfig.typecheck.json',
    },
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // Two files at a time on this 2-core machine: most suites wait on child processes (droverd, the
    // manager, agents), so a second worker fills the idle core. Measured quiet: 5 min 15 s instead of
    // 8 min 40 s, both green (docs/decisions/0017-test-waits-and-type-checks.md). On a loaded machine,
    // `npx vitest run --maxWorkers=1`.
    maxWorkers: 2,
    // The load test (10,000 connections at once, docs/decisions/0027-admission.md) needs the machine to
    // itself: it runs after every other file, alone. Both projects are the suite `npm test` runs.
    projects: [
      {
        extends: true,
        test: {
          name: 'drover',
          include: ['packages/*/src/**/*.test.ts', 'packages/*/test/**/*.test.ts', 'daemon/src/**/*.test.ts', 'daemon/test/**/*.test.ts', 'test/**/*.test.ts'],
          exclude: [...loadTests, ...browserTests, '**/node_modules/**'],
          sequence: { groupOrder: 0 },
        },
      },
      { extends: true, test: { name: 'browser', include: browserTests, typecheck: { enabled: false }, sequence: { groupOrder: 0 } } },
      { extends: true, test: { name: 'load', include: loadTests, typecheck: { enabled: false }, sequence: { groupOrder: 1 } } },
    ],
  },
});
