// Realistic wire values, built the way the real peers build them, and the checks every wire
// schema gets: the schema tests in packages/protocol/src/schemas/ each describe one family with
// describeWireFamily, giving it values each of its schemas accepts and refuses.
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { CommandResult, NoncePayload, UpdateCommand } from '../src/schemas/commands.js';
import type { DsseEnvelope, ReleasePayload } from '../src/schemas/releases.js';
import { wireSchemas } from '../src/schemas/wire-schemas.js';
import { matchesSchema, schemaProblems } from '../src/validate.js';

// ---------------------------------------------------------------------------------------------
// Values several families share.

export const hex64 = (seed: string): string => createHash('sha256').update(seed).digest('hex');
export const machineId = hex64('machine-1');
export const publicKey = Buffer.alloc(32, 7).toString('base64');
export const signature = Buffer.alloc(64, 9).toString('base64');
export const keyid = hex64('key').slice(0, 16);
export const at = '2026-11-24T12:00:00.000Z';
export const deploymentId = '3f1c2a9e-8b7d-4c6e-9a1f-2b3c4d5e6f70';
export const changelog = 'fix: memory leak in telemetry service\nfeat: add new monitoring endpoint\ntest: improve coverage';
export const presignedUrl = 'https://cdn.example.net/agent/1.2.3/linux-x64?expires=1795000000&sig=' + hex64('sig');

export const releasePayload: ReleasePayload = {
  schema: 'drover.release/v1',
  artifact: 'agent',
  version: '1.2.3',
  commitSha: 'a1b2c3d4e5f6a7b8c9d0a1b2c3d4e5f6a7b8c9d0',
  channel: 'stable',
  platform: 'linux-x64',
  file: { name: 'agent-1.2.3-linux-x64.tar.gz', size: 18_874_368, sha256: hex64('artifact') },
  createdAt: at,
  expiresAt: '2027-02-22T12:00:00.000Z',
  changelog,
};
export const envelope: DsseEnvelope = {
  payloadType: 'application/vnd.drover.release+json',
  payload: Buffer.from(JSON.stringify(releasePayload)).toString('base64'),
  signatures: [{ keyid, sig: signature }],
};
export const noncePayload: NoncePayload = {
  v: 1,
  nonceId: 'n0nce-1d-0123456789ab',
  agentId: 'agent-7f3a',
  machineId,
  deploymentId,
  artifact: 'agent',
  fromVersion: '1.2.2',
  toVersion: '1.2.3',
  rollback: false,
  iat: 1_795_000_000,
  exp: 1_795_003_600,
};
export const nonce = `${Buffer.from(JSON.stringify(noncePayload)).toString('base64url')}.${Buffer.alloc(64, 3).toString('base64url')}`;

export const updateCommand: UpdateCommand = {
  id: 'cmd-01J9Z8',
  type: 'update',
  artifact: 'agent',
  release: envelope,
  url: '/v1/download/agent/1.2.3/linux-x64',
  nonce,
  force: false,
  drainTimeoutSeconds: 120,
  deadline: '2026-11-24T13:00:00.000Z',
};
export const commandResults: CommandResult[] = [
  { commandId: 'cmd-01J9Y1', outcome: 'succeeded', detail: {}, nonce },
  { commandId: 'cmd-01J9Y2', outcome: 'rejected', detail: { code: 'RELEASE_SIGNATURE_INVALID', message: 'No trusted key signed the release.' } },
];
export const inventory = {
  os: { platform: 'linux', distro: 'Ubuntu', release: '24.04', codename: 'noble', kernel: '6.8.0-45-generic', arch: 'x64' },
  cpu: { manufacturer: 'Intel', brand: 'Xeon(R) Gold 6338', cores: 8, physicalCores: 4, speedGHz: 2.0 },
  memory: { totalBytes: 16_777_216_000, availableBytes: 9_000_000_000 },
  disks: [{ mount: '/', fs: '/dev/sda1', type: 'ext4', sizeBytes: 107_374_182_400, availableBytes: 53_687_091_200 }],
  uptimeSeconds: 86_400.5,
  facts: { 'cloud.provider': 'hetzner', 'gpu.count': 0, containerised: false, rack: null },
};

// ---------------------------------------------------------------------------------------------
// Each schema: values it accepts, and values it refuses with the JSON pointer of the problem.

export interface Refusal {
  why: string;
  value: unknown;
  path: string;
}
export interface Examples {
  valid: unknown[];
  invalid: Refusal[];
}

/** A deep copy of `base` with the value at `path` (a JSON pointer) replaced, or removed when `value` is undefined. */
export function patch(base: unknown, path: string, value: unknown): unknown {
  const copy: unknown = structuredClone(base);
  const keys = path.split('/').slice(1);
  const last = keys.pop();
  let node: unknown = copy;
  for (const key of keys) node = (node as Record<string, unknown>)[key];
  if (last === undefined || typeof node !== 'object' || node === null) throw new Error(`patch: no parent at ${path}`);
  const parent = node as Record<string, unknown>;
  if (value === undefined) Reflect.deleteProperty(parent, last);
  else parent[last] = value;
  return copy;
}
export const refuse = (why: string, base: unknown, path: string, value: unknown): Refusal => ({ why, value: patch(base, path, value), path });
export const many = <T>(count: number, item: T): T[] => Array.from({ length: count }, () => item);
export const long = (length: number): string => 'x'.repeat(length);

export function schemaOf(name: string): (typeof wireSchemas)[string] {
  const schema = wireSchemas[name];
  if (schema === undefined) throw new Error(`no wire schema ${name}`);
  return schema;
}

function paths(name: string, value: unknown): string[] {
  return schemaProblems(schemaOf(name), value, 100).map((problem) => problem.path);
}

/** The names in wireSchemas of the schemas a family module exports. */
export function wireSchemaNamesOf(family: Record<string, unknown>): string[] {
  const exported = new Set(Object.values(family));
  return Object.entries(wireSchemas)
    .filter(([, schema]) => exported.has(schema))
    .map(([name]) => name);
}

/**
 * The checks every wire schema of a family gets: realistic values accepted, the given refusals
 * reported at their JSON pointer, every required property required, unknown properties refused by
 * requests and strict files only, and validation that answers for any input.
 */
export function describeWireFamily(family: Record<string, unknown>, examples: Record<string, Examples>): void {
  const names = wireSchemaNamesOf(family);
  const example = (name: string): unknown => examples[name]?.valid[0];

  describe('wire schemas', () => {
    it('have examples for every schema of the family, and every schema is named by its $id', () => {
      expect(names.length).toBeGreaterThan(0);
      expect(Object.keys(examples).sort()).toEqual([...names].sort());
      for (const name of names) expect(schemaOf(name).$id, name).toBe(name);
    });

    describe.each(names)('%s', (name) => {
      const schema = schemaOf(name);
      const { valid, invalid } = examples[name] ?? { valid: [], invalid: [] };
      const isObject = schema.type === 'object';
      const required = isObject && Array.isArray(schema.required) ? (schema.required as string[]) : [];
      const [first] = valid;

      it('accepts realistic values', () => {
        expect(valid.length).toBeGreaterThan(0);
        for (const value of valid) {
          expect(schemaProblems(schema, value)).toEqual([]);
          expect(matchesSchema(schema, value)).toBe(true);
        }
      });

      it.each(invalid.map((refusal) => [refusal.why, refusal] as const))('refuses %s', (_why, { value, path }) => {
        expect(matchesSchema(schema, value)).toBe(false);
        expect(paths(name, value)).toContain(path);
      });

      it.runIf(required.length > 0).each(required)('refuses a value without %s', (property) => {
        const value = patch(first, `/${property}`, undefined);
        expect(matchesSchema(schema, value)).toBe(false);
        expect(paths(name, value)).toContain(`/${property}`);
      });

      // Strict on input, tolerant on output: requests refuse unknown fields; responses and files
      // accept them, so a newer peer can add one without breaking an older one.
      if (schema.additionalProperties === false) {
        it('refuses an unknown property (it is a request or a strict file)', () => {
          expect(paths(name, { ...(first as object), unexpected: 1 })).toContain('/unexpected');
        });
      } else if (isObject) {
        it('accepts an unknown property (it is read by peers that may be older)', () => {
          expect(schemaProblems(schema, { ...(first as object), added_in_a_later_version: 1 })).toEqual([]);
        });
      }
    });

    it('refuses a value of the wrong type at the root', () => {
      for (const name of names) {
        expect(paths(name, 'a string'), name).toContain('/');
        expect(paths(name, [example(name)]), name).toContain('/');
      }
    });
  });

  describe('schemaProblems on arbitrary input', () => {
    // A malformed request must get a 4xx, never a 5xx: validation has to answer for any JSON value
    // (and for whatever else a caller hands it), and agree with matchesSchema.
    it.each(names)('never throws for %s, and agrees with matchesSchema', (name) => {
      const schema = schemaOf(name);
      fc.assert(
        fc.property(fc.oneof(fc.jsonValue(), fc.anything()), (value) => {
          const problems = schemaProblems(schema, value);
          expect(problems.length).toBeLessThanOrEqual(5);
          expect(problems.length === 0).toBe(matchesSchema(schema, value));
        }),
        { numRuns: 200 },
      );
    });

    const strict = names.filter((name) => schemaOf(name).additionalProperties === false);
    it.runIf(strict.length > 0).each(strict)('%s refuses any unknown property added to a valid value', (name) => {
      const schema = schemaOf(name);
      const known = new Set(Object.keys((schema.properties ?? {}) as object));
      fc.assert(
        fc.property(
          fc.string({ minLength: 1, maxLength: 20 }).filter((key) => !known.has(key)),
          fc.jsonValue(),
          (key, extra) => {
            expect(matchesSchema(schema, { ...(example(name) as object), [key]: extra })).toBe(false);
          },
        ),
        { numRuns: 50 },
      );
    });
  });
}
