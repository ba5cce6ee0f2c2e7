// Writes every wire schema as a JSON Schema (draft 2020-12) file, for agents and tools written in
// other languages: dist/schemas/<Name>.json and dist/schemas/index.json listing them. Run after
// tsc (`npm run build` does): it reads the compiled schemas (dist/schemas/wire-schemas.js), so the
// files always match the code. The JSON files sit beside the compiled schema modules, which the
// package's exports map does not expose.
//
//   node packages/protocol/scripts/write-json-schemas.js [--out <dir>]   (default: packages/protocol/dist/schemas)
//
// Each file is self-contained: a schema embedded in another (a DsseEnvelope inside an
// UpdateCommand) is inlined without its $id, so loading every file into one validator (Ajv, say)
// never finds the same $id defined twice, and no file needs another to resolve.

import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import process from 'node:process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const JSON_SCHEMA_DIALECT = 'https://json-schema.org/draft/2020-12/schema';
const packageDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** A plain JSON copy of a TypeBox schema: JSON.stringify drops TypeBox's symbol keys. */
function toJson(schema) {
  return JSON.parse(JSON.stringify(schema));
}

// Keywords whose value maps names to subschemas, and keywords whose value is data, not a schema.
const SCHEMA_MAPS = new Set(['properties', 'patternProperties', '$defs', 'dependentSchemas']);
const DATA_KEYWORDS = new Set(['const', 'enum', 'default', 'examples']);

/** Removes `$id` from every subschema below the root, in place. */
function dropNestedIds(schema, isRoot) {
  if (schema === null || typeof schema !== 'object') return; // a boolean schema
  if (!isRoot) delete schema.$id;
  for (const [keyword, value] of Object.entries(schema)) {
    if (DATA_KEYWORDS.has(keyword) || value === null || typeof value !== 'object') continue;
    if (SCHEMA_MAPS.has(keyword)) for (const subschema of Object.values(value)) dropNestedIds(subschema, false);
    else if (Array.isArray(value)) for (const subschema of value) dropNestedIds(subschema, false);
    else dropNestedIds(value, false);
  }
}

async function loadWireSchemas() {
  const compiled = join(packageDir, 'dist', 'schemas', 'wire-schemas.js');
  try {
    const module = await import(pathToFileURL(compiled).href);
    return module.wireSchemas;
  } catch (error) {
    throw new Error(`Could not load ${compiled}. Build the protocol package first: npx tsc --build tsconfig.build.json`, { cause: error });
  }
}

async function main() {
  const { values } = parseArgs({ options: { out: { type: 'string' } } });
  const outDir = resolve(values.out ?? join(packageDir, 'dist', 'schemas'));
  const wireSchemas = await loadWireSchemas();

  // Remove every JSON file first, so a renamed or removed schema leaves no stale file behind. Only
  // the JSON files: the default directory also holds tsc's output for src/schemas/, which an
  // incremental build would not write again.
  await mkdir(outDir, { recursive: true });
  for (const entry of await readdir(outDir, { withFileTypes: true })) {
    if (entry.isFile() && entry.name.endsWith('.json')) await rm(join(outDir, entry.name));
  }

  const index = [];
  for (const [name, schema] of Object.entries(wireSchemas)) {
    const json = toJson(schema);
    // The file name, the $id and the wireSchemas key must agree, or a $ref by name would miss.
    if (json.$id !== name) throw new Error(`wireSchemas.${name} has $id ${JSON.stringify(json.$id)}; give it $id "${name}".`);
    dropNestedIds(json, true);
    const { $id, ...rest } = json;
    const file = `${name}.json`;
    await writeFile(join(outDir, file), `${JSON.stringify({ $schema: JSON_SCHEMA_DIALECT, $id, ...rest }, null, 2)}\n`);
    index.push({ name, file, ...(typeof json.description === 'string' ? { description: json.description } : {}) });
  }
  await writeFile(join(outDir, 'index.json'), `${JSON.stringify({ $comment: 'drover wire schemas, JSON Schema draft 2020-12', schemas: index }, null, 2)}\n`);
  process.stdout.write(`Wrote ${index.length} JSON Schemas to ${outDir}\n`);
}

main().catch((error) => {
  process.stderr.write(`write-json-schemas: ${error instanceof Error ? error.message : String(error)}\n`);
  if (error instanceof Error && error.cause !== undefined) process.stderr.write(`  cause: ${String(error.cause)}\n`);
  process.exitCode = 1;
});
