import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import { AgentIdSchema, Ed25519PublicKeyBase64, KeyId, MachineIdSchema, PlatformSchema, VersionSchema, dateTime } from './common.js';

// Enrollment: POST /v1/agents/enroll, a daemon's first call to the manager.

// Bearer credentials: RFC 6750's token68 alphabet, so a value can always go into an Authorization header.
const TOKEN68 = '^[A-Za-z0-9._~+/-]+=*$';
const ByteCount = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'bytes' });

const Fact = Type.String({ maxLength: 256 });
/** Facts about a host, every field optional; new facts go under `facts`. */
export const InventorySchema = Type.Object(
  {
    os: Type.Optional(
      Type.Object(
        {
          platform: Type.Optional(Fact),
          distro: Type.Optional(Fact),
          release: Type.Optional(Fact),
          codename: Type.Optional(Fact),
          kernel: Type.Optional(Fact),
          arch: Type.Optional(Fact),
        },
        { additionalProperties: false },
      ),
    ),
    cpu: Type.Optional(
      Type.Object(
        {
          manufacturer: Type.Optional(Fact),
          brand: Type.Optional(Fact),
          cores: Type.Optional(Type.Integer({ minimum: 0, maximum: 1 << 20, description: 'logical cores' })),
          physicalCores: Type.Optional(Type.Integer({ minimum: 0, maximum: 1 << 20 })),
          speedGHz: Type.Optional(Type.Number({ minimum: 0, maximum: 1000 })),
        },
        { additionalProperties: false },
      ),
    ),
    memory: Type.Optional(Type.Object({ totalBytes: Type.Optional(ByteCount), availableBytes: Type.Optional(ByteCount) }, { additionalProperties: false })),
    disks: Type.Optional(
      Type.Array(
        Type.Object(
          {
            mount: Type.String({ minLength: 1, maxLength: 4096 }),
            fs: Type.Optional(Type.String({ maxLength: 4096, description: 'the device or file system, e.g. /dev/sda1' })),
            type: Type.Optional(Type.String({ maxLength: 64, description: 'e.g. ext4' })),
            sizeBytes: Type.Optional(ByteCount),
            availableBytes: Type.Optional(ByteCount),
          },
          { additionalProperties: false },
        ),
        { maxItems: 64 },
      ),
    ),
    uptimeSeconds: Type.Optional(Type.Number({ minimum: 0 })),
    facts: Type.Optional(
      Type.Record(
        Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$' }),
        Type.Union([Type.String({ maxLength: 1024 }), Type.Number(), Type.Boolean(), Type.Null()]),
        {
          maxProperties: 64,
          additionalProperties: false,
          description: 'Any other fact about the host, as name -> scalar. New facts go here, so managers that predate them still accept them.',
        },
      ),
    ),
  },
  {
    $id: 'Inventory',
    additionalProperties: false,
    description: 'Facts about the host (what systeminformation reports). Every field is optional: report what could be read.',
  },
);
/** Facts about a host; see {@link InventorySchema}. */
export type Inventory = Static<typeof InventorySchema>;

/** Body of `POST /v1/agents/enroll`, a daemon's first call to the manager. */
export const EnrollRequestSchema = Type.Object(
  {
    enrollmentToken: Type.String({ minLength: 16, maxLength: 512, pattern: TOKEN68, description: 'A token with seats and an expiry, from the operator.' }),
    machineId: MachineIdSchema,
    hostname: Type.String({ minLength: 1, maxLength: 253, pattern: '^[\\x21-\\x7E]+$', description: 'Printable ASCII, no spaces.' }),
    platform: PlatformSchema,
    arch: Type.String({ minLength: 1, maxLength: 32, pattern: '^[a-z0-9_]+$', description: "Node's process.arch, e.g. x64, arm64." }),
    agentVersion: VersionSchema,
    daemonVersion: VersionSchema,
    inventory: InventorySchema,
  },
  { $id: 'EnrollRequest', additionalProperties: false, description: 'POST /v1/agents/enroll, with the X-Machine-ID header.' },
);
/** Body of an enrollment; see {@link EnrollRequestSchema}. */
export type EnrollRequest = Static<typeof EnrollRequestSchema>;

/** A manager key that signs update nonces: its key id and base64 public key. */
export const ManagerKeySchema = Type.Object({ keyid: KeyId, publicKey: Ed25519PublicKeyBase64 }, { description: 'A manager key that signs update nonces.' });
/** A manager key; see {@link ManagerKeySchema}. */
export type ManagerKey = Static<typeof ManagerKeySchema>;

/** 200 from `POST /v1/agents/enroll`: the agent id, its credential and service token, the manager's keys. */
export const EnrollResponseSchema = Type.Object(
  {
    agentId: AgentIdSchema,
    credential: Type.String({ minLength: 16, maxLength: 512, pattern: TOKEN68, description: 'Sent back as Authorization: Bearer <credential>. Store it 0600.' }),
    serviceToken: Type.String({
      minLength: 32,
      maxLength: 512,
      pattern: '^[A-Za-z0-9_-]+$',
      description: 'base64url; the agent reads it from DROVER_SERVICE_TOKEN and accepts Bearer service:<token>.',
    }),
    managerKeys: Type.Array(ManagerKeySchema, {
      minItems: 1,
      maxItems: 16,
      description: 'Trusted only if the daemon config pins one of them, or says tofu: true.',
    }),
    checkinIntervalSeconds: Type.Integer({ minimum: 5, maximum: 86400 }),
  },
  { $id: 'EnrollResponse', description: '200 from POST /v1/agents/enroll.' },
);
/** 200 from an enrollment; see {@link EnrollResponseSchema}. */
export type EnrollResponse = Static<typeof EnrollResponseSchema>;

/**
 * 200 from `POST /v1/agents/{agentId}/credential` (credential rotation, decision 0032): a new
 * credential, pending until its first use. Until then the one the request presented still works;
 * from its first use the old one is refused.
 */
export const CredentialResponseSchema = Type.Object(
  {
    credential: Type.String({ minLength: 16, maxLength: 512, pattern: TOKEN68, description: 'The next credential. Store it 0600 beside the current one, then use it.' }),
    issuedAt: dateTime(),
  },
  { $id: 'CredentialResponse', description: '200 from POST /v1/agents/{agentId}/credential.' },
);
/** 200 from a credential rotation; see {@link CredentialResponseSchema}. */
export type CredentialResponse = Static<typeof CredentialResponseSchema>;
