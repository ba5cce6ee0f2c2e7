// Writes docs/protocol-reference.md from the JSON Schemas that write-json-schemas.js puts in
// dist/schemas (run `npm run build` first): each wire schema's description and a table of its
// fields (type, required, limits, description). Nested objects are flattened into dotted paths
// (`state.update.step`, `signatures[].keyid`), so every field of every message has its row.
//
//   node packages/protocol/scripts/write-protocol-reference.js [--out <file>]   (default: docs/protocol-reference.md)
//
// The output depends on the schemas only (no date, no path), so test/docs/protocol-reference.test.ts
// can regenerate it and compare it with the committed file: the doc cannot drift from the code.

import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const packageDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const schemasDir = join(packageDir, 'dist', 'schemas');
const defaultOut = resolve(packageDir, '..', '..', 'docs', 'protocol-reference.md');

/**
 * Text safe inside a Markdown table cell: no pipe ends the cell, no newline ends the row. GitHub's
 * tables unescape `\|` even inside a code span, and leave every other backslash as it is.
 */
function cell(text) {
  return String(text).replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

/** Inline code for a cell; backticks inside would end the span, so such values use double ones. */
function code(text) {
  const value = String(text);
  return value.includes('`') ? `\`\` ${value} \`\`` : `\`${value}\``;
}

function isObject(schema) {
  return schema !== null && typeof schema === 'object' && (schema.type === 'object' || schema.properties !== undefined);
}

/** A short type expression: `string`, `"update"`, `"agent" \| "daemon"`, `object[]`, `string \| null`. */
function typeOf(schema) {
  if (schema === true || schema === undefined) return 'any';
  if (schema === false) return 'never';
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  if (Array.isArray(schema.enum)) return schema.enum.map((value) => JSON.stringify(value)).join(' | ');
  const union = schema.anyOf ?? schema.oneOf;
  if (Array.isArray(union)) return [...new Set(union.map(typeOf))].join(' | ');
  if (schema.type === 'array') {
    const item = typeOf(schema.items);
    return item.includes(' | ') ? `(${item})[]` : `${item}[]`;
  }
  if (Array.isArray(schema.type)) return schema.type.join(' | ');
  if (typeof schema.type === 'string') return schema.format !== undefined ? `${schema.type} (${schema.format})` : schema.type;
  return 'any';
}

/** The limits a validator enforces on a value, as short phrases. */
function limitsOf(schema) {
  if (schema === null || typeof schema !== 'object') return [];
  const limits = [];
  const range = (min, max, unit) => {
    if (min !== undefined && max !== undefined) limits.push(`${unit} ${min}..${max}`);
    else if (min !== undefined) limits.push(`${unit} >= ${min}`);
    else if (max !== undefined) limits.push(`${unit} <= ${max}`);
  };
  range(schema.minLength, schema.maxLength, 'length');
  range(schema.minimum, schema.maximum, 'value');
  if (schema.exclusiveMinimum !== undefined) limits.push(`value > ${schema.exclusiveMinimum}`);
  if (schema.exclusiveMaximum !== undefined) limits.push(`value < ${schema.exclusiveMaximum}`);
  range(schema.minItems, schema.maxItems, 'items');
  range(schema.minProperties, schema.maxProperties, 'keys');
  if (schema.uniqueItems === true) limits.push('unique items');
  if (schema.pattern !== undefined) limits.push(`pattern ${code(schema.pattern)}`);
  const union = schema.anyOf ?? schema.oneOf;
  if (Array.isArray(union)) {
    for (const variant of union) for (const limit of limitsOf(variant)) if (!limits.includes(limit)) limits.push(limit);
  }
  if (schema.type === 'array' && schema.items !== undefined && !isObject(schema.items)) {
    for (const limit of limitsOf(schema.items)) limits.push(`each: ${limit}`);
  }
  return limits;
}

/** The object inside a property, if it has one: itself, its array items, or an object variant of a union. */
function nestedObject(schema) {
  if (schema === null || typeof schema !== 'object') return undefined;
  if (isObject(schema) && schema.properties !== undefined) return { schema, suffix: '' };
  if (schema.type === 'array') {
    const inner = nestedObject(schema.items);
    return inner === undefined ? undefined : { schema: inner.schema, suffix: `[]${inner.suffix}` };
  }
  const union = schema.anyOf ?? schema.oneOf;
  if (Array.isArray(union)) {
    const objects = union.filter((variant) => isObject(variant) && variant.properties !== undefined);
    if (objects.length === 1) return { schema: objects[0], suffix: '' };
  }
  return undefined;
}

/** One row per field, depth first, nested fields under their parent's dotted path. */
function rows(schema, prefix) {
  const required = new Set(schema.required ?? []);
  const out = [];
  for (const [name, property] of Object.entries(schema.properties ?? {})) {
    const path = `${prefix}${name}`;
    const limits = limitsOf(property);
    const nested = nestedObject(property);
    if (nested !== undefined && nested.schema.additionalProperties === false) limits.push('no other fields');
    out.push(`| ${code(path)} | ${cell(typeOf(property))} | ${required.has(name) ? 'yes' : 'no'} | ${cell(limits.join('; '))} | ${cell(property.description ?? '')} |`);
    if (nested !== undefined) out.push(...rows(nested.schema, `${path}${nested.suffix}.`));
  }
  return out;
}

function table(schema) {
  const body = rows(schema, '');
  if (body.length === 0) return ['No fields.'];
  return ['| field | type | required | limits | description |', '|---|---|---|---|---|', ...body];
}

function section(name, schema) {
  const lines = [`## ${name}`, ''];
  if (typeof schema.description === 'string') lines.push(schema.description, '');
  const union = schema.anyOf ?? schema.oneOf;
  if (Array.isArray(union) && schema.properties === undefined) {
    lines.push(`One of ${union.length}:`, '');
    union.forEach((variant, index) => {
      const title = typeof variant.description === 'string' ? variant.description : `The JSON value ${code(typeOf(variant))}.`;
      lines.push(`### ${name}, form ${index + 1}: ${isObject(variant) ? 'object' : typeOf(variant)}`, '', title, '');
      if (isObject(variant)) {
        lines.push(...table(variant), '');
        if (variant.additionalProperties === false) lines.push('No other fields are accepted.', '');
      }
    });
    return lines;
  }
  if (isObject(schema)) {
    lines.push(...table(schema), '');
    if (schema.additionalProperties === false) lines.push('No other fields are accepted.', '');
    return lines;
  }
  lines.push(`Type: ${code(typeOf(schema))}.`, '');
  return lines;
}

async function main() {
  const { values } = parseArgs({ options: { out: { type: 'string' } } });
  const out = resolve(values.out ?? defaultOut);
  let index;
  try {
    index = JSON.parse(await readFile(join(schemasDir, 'index.json'), 'utf8'));
  } catch (error) {
    throw new Error(`Could not read ${join(schemasDir, 'index.json')}. Build first: npm run build`, { cause: error });
  }
  const names = index.schemas.map((entry) => entry.name);
  const lines = [
    '# Protocol reference',
    '',
    '<!-- Generated by packages/protocol/scripts/write-protocol-reference.js from the TypeBox schemas of',
    '     @drover/protocol (`npm run build && npm run docs:protocol`). Do not edit by hand:',
    '     test/docs/protocol-reference.test.ts fails when this file differs from the schemas. -->',
    '',
    'Every message drover puts on the wire, as defined once in `packages/protocol/src/schemas/` and',
    'exported as JSON Schema (draft 2020-12) in `packages/protocol/dist/schemas/` by `npm run build`, for',
    'agents and tools written in other languages. The manager\'s routes are described in',
    '[manager.md](manager.md), the agent\'s in [agent-sdk.md](agent-sdk.md), the error codes in',
    '[errors.md](errors.md).',
    '',
    'In the tables, a nested field is named by its path: `a.b` is field `b` of object `a`, and `a[].b` is',
    'field `b` of each element of array `a`. "limits" are what the schema enforces: string length,',
    'numeric range, item count and pattern. "No other fields" means unknown fields are refused.',
    '',
    '## Contents',
    '',
    ...names.map((name) => `- [${name}](#${name.toLowerCase()})`),
    '',
  ];
  for (const name of names) {
    const schema = JSON.parse(await readFile(join(schemasDir, `${name}.json`), 'utf8'));
    lines.push(...section(name, schema));
  }
  await writeFile(out, `${lines.join('\n').replace(/\n+$/, '')}\n`);
  process.stdout.write(`Wrote the protocol reference (${names.length} schemas) to ${out}\n`);
}

main().catch((error) => {
  process.stderr.write(`write-protocol-reference: ${error instanceof Error ? error.message : String(error)}\n`);
  if (error instanceof Error && error.cause !== undefined) process.stderr.write(`  cause: ${String(error.cause)}\n`);
  process.exitCode = 1;
});
