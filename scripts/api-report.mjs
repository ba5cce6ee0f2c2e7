#!/usr/bin/env node
// The API reports: every workspace package's public surface (what its main entry exports, with the
// signatures and TSDoc summaries), made by API Extractor from the built .d.ts files and checked in at
// <package>/api/<name>.api.md, so a change of the surface shows in review
// (docs/decisions/0018-public-api-surface.md).
//
//   node scripts/api-report.mjs --local   rewrite the reports that changed (npm run api:report)
//   node scripts/api-report.mjs           check them: exit 1 when one is stale or API Extractor
//                                         warns (npm run api:check, a CI stage)
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
  // compiler error, an export API Extractor cannot analyse.
  let findings = 0;
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
      if (message.logLevel === ExtractorLogLevel.Error || message.logLevel === ExtractorLogLevel.Warning) findings++;
    },
  });

  if (result.apiReportChanged && local) console.log(`api-report: ${report} written`);
  else if (result.apiReportChanged) problems.push(`${report} is stale: the public surface of ${workspace} changed; run \`npm run build && npm run api:report\` and commit the report`);
  else console.log(`api-report: ${report} up to date`);
  if (findings > 0) {
    const what = `API Extractor reported ${findings} warning(s) or error(s) for ${workspace}, above`;
    // --local does not fail on warnings (the report is written all the same); api:check does.
    if (local && result.errorCount === 0) console.log(`api-report: ${what}; \`npm run api:check\` fails until they are fixed`);
    else problems.push(what);
  }
}

if (problems.length > 0) {
  for (const problem of problems) console.error(`api-report: ${problem}`);
  process.exit(1);
}
