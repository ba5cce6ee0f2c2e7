// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-restricted-globals': ['error', { name: 'fetch', message: 'All outbound HTTP goes through the one HTTP module (undici).' }],
      // A deadline must be held by something that cannot be collected: on Node 20 a composite made
      // by AbortSignal.any, with an AbortSignal.timeout inside, can be garbage-collected and never
      // fire (nodejs/node#57736, issue 18). deadlineSignal's timer holds its controller strongly.
      'no-restricted-properties': [
        'error',
        { object: 'AbortSignal', property: 'timeout', message: "Use deadlineSignal from @drover/http: AbortSignal.timeout's timer can be garbage-collected (issue 18)." },
        { object: 'AbortSignal', property: 'any', message: 'Use deadlineSignal from @drover/http: on Node 20 an AbortSignal.any composite can be garbage-collected before it fires (issue 18).' },
      ],
    },
  },
  {
    files: ['packages/*/src/**/*.ts', 'daemon/src/**/*.ts'],
    ignores: ['**/*.test.ts'],
    rules: { 'no-console': 'error' },
  },
  {
    // One module owns undici (docs/decisions/0015-one-http-layer.md); others may name its types.
    files: ['packages/*/src/**/*.ts', 'daemon/src/**/*.ts'],
    ignores: ['packages/http/src/**', '**/*.test.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': ['error', { paths: [{ name: 'undici', message: 'All outbound HTTP goes through @drover/http.', allowTypeImports: true }] }],
    },
  },
  {
    files: ['packages/cli/src/**/*.ts', 'daemon/src/cli/**/*.ts', 'bench/**/*.ts', 'examples/**/*.ts'],
    rules: { 'no-console': 'off' },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      ...tseslint.configs.disableTypeChecked.languageOptions,
      // Plain-JS build scripts run under Node.
      globals: { process: 'readonly', console: 'readonly', URL: 'readonly', Buffer: 'readonly' },
    },
  },
  {
    // The web console runs in the browser: its globals, and fetch is the browser's own (not outbound HTTP of a package).
    files: ['packages/manager/console/**/*.js', 'test/browser/msw/**/*.js'],
    languageOptions: {
      globals: { location: 'readonly', document: 'readonly', fetch: 'readonly', EventSource: 'readonly', addEventListener: 'readonly', removeEventListener: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', URLSearchParams: 'readonly' },
    },
    rules: { 'no-restricted-globals': 'off' },
  },
  {
    // CommonJS fixtures run by node as agent releases (test/fixtures/ciris-agent.cjs).
    files: ['**/*.cjs'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      ...tseslint.configs.disableTypeChecked.languageOptions,
      sourceType: 'commonjs',
      globals: { process: 'readonly', require: 'readonly', setTimeout: 'readonly', Buffer: 'readonly' },
    },
    rules: { ...tseslint.configs.disableTypeChecked.rules, '@typescript-eslint/no-require-imports': 'off' },
  },
);
