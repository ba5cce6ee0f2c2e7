#!/usr/bin/env node
// The API reports: every workspace package's public surface (what its main entry exports, with the
// signatures and TSDoc summaries), made by API Extractor from the built .d.ts files and checked in at
// <package>/api/<name>.api.md, so a change of the surface shows in review
// (docs/decisions/0018-public-api-surface.md).
//
//   node scripts/api-report.mjs --local   rewrite the reports that changed (npm run api:report)
//   node scripts/api-report.mjs           check them: exit 1 when one is stale (npm run api:check,
//                                         a CI stage)
//
// Both exit 1 when API Extractor warns (a TSDoc syntax error, a type a public signature names but
// the entry does not export, a compiler error), naming the source file and the fix: a report never
// carries a `// Warning:` line (api-extractor.base.json keeps them out of it).
//
// Both read dist/: run `npm run build` first. Each package's api-extractor.json (extending
// api-extractor.base.json) names its entry; a workspace without one is a problem, so a new package
// gets a report too.

import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Extractor, ExtractorConfig, ExtractorLogLevel } from '@microsoft/api-extractor';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const unknown = args.filter((arg) => arg !== '--local');
if (unknown.length > 0) {
  console.error(`api-report: unknown argument ${unknown.join(' ')}; usage: node scripts/api-report.mjs [--local]`);
  process.exit(2);
}
const local = args.includes('--local');

/** Repo-relative path with forward slashes. */
const rel = (path) => relative(root, path).split(sep).join('/');

/**
 * Where a message points, as a reader fixes it: API Extractor reads the built .d.ts, so a place in
 * `<package>/dist/x.d.ts` is named in `<package>/src/x.ts` (every package builds src/ into dist/),
 * at the line holding the same text when there is exactly one, with the .d.ts place beside it.
 */
function locate(message) {
  if (message.sourceFilePath === undefined) return undefined;
  const built = message.sourceFileLine === undefined ? rel(message.sourceFilePath) : `${rel(message.sourceFilePath)}:${message.sourceFileLine}:${message.sourceFileColumn}`;
  const dist = `${sep}dist${sep}`;
  const at = message.sourceFilePath.lastIndexOf(dist);
  const source = at === -1 ? undefined : join(message.sourceFilePath.slice(0, at), 'src', message.sourceFilePath.slice(at + dist.length).replace(/\.d\.ts$/, '.ts'));
  if (source === undefined || !existsSync(source)) return built;
  const text = readFileSync(message.sourceFilePath, 'utf8').split('\n')[(message.sourceFileLine ?? 0) - 1]?.trim();
  const lines = readFileSync(source, 'utf8').split('\n');
  const matches = text ? lines.flatMap((line, index) => (line.trim() === text ? [index + 1] : [])) : [];
  return `${rel(source)}${matches.length === 1 ? `:${matches[0]}` : ''} (built as ${built})`;
}

/** What to do about a warning, by its kind: said once per package under the list of places. */
function fixFor(messageId) {
  if (messageId.startsWith('tsdoc-')) {
    return 'a TSDoc syntax error: reword the doc comment, or put code and the characters TSDoc reads as markup ({ } < > \\ @) in a `code span` on one line, and fence @example code in ```ts';
  }
  if (messageId === 'ae-forgotten-export') {
    return "a forgotten export: export the type from the package's src/index.ts (`export type`), or stop naming it in a public signature";
  }
  return 'fix it where it says';
}

const workspaces = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).workspaces ?? [];
const problems = [];
// API Extractor's own messages about the report file, answered by this script's lines.
const reportMessages = new Set(['console-api-report-not-copied', 'console-api-report-diff', 'console-api-report-created', 'console-api-report-copied', 'console-api-report-unchanged']);

for (const workspace of workspaces) {
  const configPath = join(root, workspace, 'api-extractor.json');
  if (!existsSync(configPath)) {
    problems.push(`${workspace}: no api-extractor.json; add one that extends api-extractor.base.json and names the package's main entry`);
    continue;
  }
  const config = ExtractorConfig.loadFileAndPrepare(configPath);
  if (!existsSync(config.mainEntryPointFilePath)) {
    problems.push(`${workspace}: ${rel(config.mainEntryPointFilePath)} is missing; run \`npm run build\` first`);
    continue;
  }
  const report = rel(join(config.reportFolder, config.reportConfigs[0]?.fileName ?? `${config.packageJson?.name}.api.md`));
  if (local) mkdirSync(config.reportFolder, { recursive: true });

  // Warnings and errors other than the report's own "changed" and "diff" messages: TSDoc syntax, a
  // forgotten export, a compiler error, an export API Extractor cannot analyse.
  let findings = 0;
  const fixes = new Set();
  const result = Extractor.invoke(config, {
    localBuild: local,
    // Check mode: a stale report prints its diff, so the CI log shows what changed.
    printApiReportDiff: !local,
    messageCallback: (message) => {
      // Keep the log to what needs attention, each with its file and line.
      if (message.logLevel === ExtractorLogLevel.Info || message.logLevel === ExtractorLogLevel.Verbose) {
        message.handled = true;
        return;
      }
      if (reportMessages.has(message.messageId)) {
        // Said below with the command that fixes it, rather than "copy the file" from API Extractor.
        if (message.messageId !== 'console-api-report-diff') message.handled = true;
        return;
      }
      if (message.logLevel === ExtractorLogLevel.Error || message.logLevel === ExtractorLogLevel.Warning) {
        findings++;
        fixes.add(fixFor(message.messageId));
        // Said here with the source file, rather than API Extractor's .d.ts place alone.
        message.handled = true;
        const where = locate(message);
        console.error(`api-report: ${where === undefined ? '' : `${where}: `}(${message.messageId}) ${message.text}`);
      }
    },
  });

  if (result.apiReportChanged && local) console.log(`api-report: ${report} written`);
  else if (result.apiReportChanged) problems.push(`${report} is stale: the public surface of ${workspace} changed; run \`npm run build && npm run api:report\` and commit the report`);
  else console.log(`api-report: ${report} up to date`);
  if (findings > 0) {
    // Both modes fail: a warning kept out of the report is not to be lost in a log either.
    problems.push(`${workspace}: ${findings} warning(s) or error(s) from API Extractor, above (${[...fixes].join('; ')}); fix them, then run \`npm run build && npm run api:report\``);
  }
}

if (problems.length > 0) {
  for (const problem of problems) console.error(`api-report: ${problem}`);
  process.exit(1);
}
