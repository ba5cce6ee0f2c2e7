import type { Ed25519PublicKey, Ed25519Signer, TrustPolicy } from '@drover/protocol';
import type { Fernet } from '@drover/protocol/internal';
import type { Logger } from 'pino';
import type { OidcVerifier } from './oidc/oidc-verifier.js';
import type { AuditTrail } from './audit/trail.js';
import type { BlobStore } from './blobs/blob-store.js';
import type { UrlSigner } from './releases/presign.js';
import type { Store } from './store/store.js';

/** The manager's tunables (manager.json's `settings`), each with a default. */
export interface ManagerSettings {
  /** Seconds between check-ins, told to every daemon. */
  checkinIntervalSeconds: number;
  /** Agents below this version get 426 (still with their commands, so they can upgrade). */
  minAgentVersion: string | undefined;
  /** Whether a machine already enrolled may enroll again (rotating its credential, keeping its id). */
  allowReenrollment: boolean;
  /** The channel `GET /v1/releases/latest` uses when none is asked for. */
  defaultChannel: string;
  /** The path prefix the routes are mounted under (e.g. `/fleet`), for URLs handed to daemons. */
  routePrefix: string;
  /** Hand out presigned download URLs in update commands (for a CDN in front of the manager). */
  presignDownloads: boolean;
  /** Check-ins held at once waiting for a command (the command channel, decision 0041); 0: no channel. */
  channelMaxHeld: number;
  /** The longest a check-in is held, in seconds, whatever it asks (under a proxy's idle timeout). */
  channelMaxWaitSeconds: number;
}

/** Everything the manager's operations work with; built once by `openManagerCore`. */
export interface ManagerContext {
  store: Store;
  blobs: BlobStore;
  /** The audit trail: records committed with their change (Store methods' `audit`), then hash-chained. */
  audit: AuditTrail;
  /** Signs update nonces. */
  managerKey: Ed25519Signer;
  /** The keys daemons may pin: the current one first, then older ones still trusted during a rotation. */
  managerPublicKeys: readonly Ed25519PublicKey[];
  /** Encrypts service tokens at rest. */
  fernet: Fernet;
  urlSigner: UrlSigner;
  /** The keys and threshold releases must be signed with; undefined refuses every publication. */
  trustPolicy: TrustPolicy | undefined;
  adminTokens: readonly string[];
  deployTokens: readonly string[];
  /** Verifies people's ID tokens (OIDC); undefined when no issuer is configured. */
  oidc: OidcVerifier | undefined;
  settings: ManagerSettings;
  logger: Logger;
  now: () => Date;
}

/** Who did something, as the audit log and the logs name them. */
export interface Actor {
  /** `agent:<id>`, `operator:<tokenId>` (the admin token), `deploy:<tokenId>`, `user:<sub>` (a person, OIDC), `system`. */
  name: string;
  tokenId?: string | undefined;
}

export const systemActor: Actor = { name: 'system' };
