import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { schemaOf, wireSchemaNamesOf } from '../../test/wire-examples.js';
import * as agentEndpoints from './agent-endpoints.js';
import * as audit from './audit.js';
import * as checkIn from './check-in.js';
import * as commands from './commands.js';
import * as common from './common.js';
import * as deploy from './deploy.js';
import * as enrollment from './enrollment.js';
import * as releases from './releases.js';
import { wireSchemas } from './wire-schemas.js';

// Each family's own test checks its schemas (see test/wire-examples.ts); these checks span them all.

describe('wire schemas', () => {
  it('are each defined by exactly one family module, which tests them', () => {
    const families = [common, releases, commands, agentEndpoints, enrollment, checkIn, deploy, audit];
    const defined = families.flatMap((family) => wireSchemaNamesOf(family));
    expect([...defined].sort()).toEqual(Object.keys(wireSchemas).sort());
  });

  it('is strict exactly on what drover receives and on strict files', () => {
    // Written out rather than derived from the schemas, so a schema that loses (or gains)
    // additionalProperties: false fails here.
    const strict = [
      'DsseEnvelope',
      'ReleasePayload',
      'TrustPolicy',
      'NoncePayload',
      'ShutdownRequest',
      'Inventory',
      'EnrollRequest',
      'DaemonState',
      'AgentHealthReport',
      'CommandResult',
      'CheckinRequest',
      'CheckinParams',
      'ReleaseLatestQuery',
      'ReleaseParams',
      'DownloadParams',
      'DownloadQuery',
      'DeploymentStatusQuery',
      'DeploymentActionParams',
      'DeploymentActionRequest',
      'AuditSigners',
      'AuditListQuery',
    ];
    const actual = Object.entries(wireSchemas)
      .filter(([, schema]) => schema.additionalProperties === false)
      .map(([name]) => name);
    expect(actual.sort()).toEqual(strict.sort());
  });
});

// ---------------------------------------------------------------------------------------------

const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));
const script = join(repoRoot, 'packages', 'protocol', 'scripts', 'write-json-schemas.js');
const compiled = join(repoRoot, 'packages', 'protocol', 'dist', 'schemas', 'wire-schemas.js');
const execFileAsync = promisify(execFile);

async function readJson(path: string): Promise<unknown> {
  return JSON.parse(await readFile(path, 'utf8')) as unknown;
}

/** A JSON copy of a schema as the file should hold it: nested `$id`s removed. */
function expectedFile(name: string): Record<string, unknown> {
  const strip = (node: unknown, root: boolean): unknown => {
    if (Array.isArray(node)) return node.map((item) => strip(item, false));
    if (node === null || typeof node !== 'object') return node;
    return Object.fromEntries(
      Object.entries(node)
        .filter(([key]) => root || key !== '$id')
        .map(([key, value]) => [key, key === 'const' || key === 'default' ? value : strip(value, false)]),
    );
  };
  return { $schema: 'https://json-schema.org/draft/2020-12/schema', ...(strip(JSON.parse(JSON.stringify(schemaOf(name))), true) as object) };
}

function nestedIds(node: unknown, root = true): number {
  if (Array.isArray(node)) return node.reduce((sum: number, item) => sum + nestedIds(item, false), 0);
  if (node === null || typeof node !== 'object') return 0;
  const own = !root && '$id' in node ? 1 : 0;
  return Object.values(node).reduce((sum: number, value) => sum + nestedIds(value, false), own);
}

describe('write-json-schemas.js', () => {
  it('writes every wire schema as a self-contained JSON Schema file, and an index', async () => {
    expect(existsSync(compiled), `${compiled} is missing: build first (npm run build, or npx tsc --build tsconfig.build.json)`).toBe(true);
    const out = await mkdtemp(join(tmpdir(), 'drover-schemas-'));
    try {
      await execFileAsync(process.execPath, [script, '--out', out]);
      const names = Object.keys(wireSchemas);

      const index = (await readJson(join(out, 'index.json'))) as { schemas: { name: string; file: string }[] };
      // A difference here means dist is older than src: rebuild.
      expect(index.schemas.map((entry) => entry.name)).toEqual(names);
      expect((await readdir(out)).sort()).toEqual([...names.map((name) => `${name}.json`), 'index.json'].sort());

      for (const name of names) {
        const file = (await readJson(join(out, `${name}.json`))) as Record<string, unknown>;
        expect(file.$id, name).toBe(name);
        expect(file.$schema, name).toBe('https://json-schema.org/draft/2020-12/schema');
        expect(nestedIds(file), name).toBe(0);
        expect(file, name).toEqual(expectedFile(name));
      }
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });
});
