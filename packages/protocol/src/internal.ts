/**
 * `@drover/protocol/internal`: helpers that drover's own packages (`@drover/http`, `@drover/agent`,
 * `@drover/manager`, the `drover` CLI, `droverd`) and their tests share, and that are not part of
 * the wire protocol: byte and hash helpers, file chunking and atomic writes, the protocol's limits,
 * error branding, log sanitising, the field schemas the operator API reuses, Fernet and the encryption-key rule, canonical JSON and the audit
 * chain writer.
 *
 * NO SEMVER GUARANTEE: any export here may change or disappear in any release, patch releases
 * included. Only drover's packages, released together at one version, may import it; everyone else
 * uses `@drover/protocol`. The rule for what belongs here is docs/decisions/0019-protocol-public-surface.md.
 *
 * @internal
 * @packageDocumentation
 */

export { toBase64, fromBase64, fromBase64Url, toHex } from './bytes.js';
export { sha256 } from './hash.js';
export { brandError } from './errors.js';
export { nativeEd25519, tweetnaclEd25519 } from './ed25519.js';
export { limits } from './config.js';
export { describeProblems } from './validate.js';
export { ArtifactSchema, PlatformSchema, VersionSchema, AgentIdSchema, DeploymentIdSchema, MachineIdSchema, literalUnion } from './schemas/common.js';
export { sanitizeReason } from './shutdown-reason.js';
export { readFileChunks } from './file-chunks.js';
export { writeFileAtomic, fsyncDirectory, tempPathFor } from './durable-file.js';
export { Fernet, generateFernetKey } from './fernet.js';
export { resolveEncryptionKey, deriveCirisEncryptionKey } from './encryption-key.js';
export type { EncryptionKeySource } from './encryption-key.js';
export { canonicalize } from './canonical-json.js';
export { AuditChain, auditEntryBody } from './audit/writer.js';
export type { AppendedAuditRecord } from './audit/writer.js';
export { buildAuditSigners } from './audit/signers.js';
export { AUDIT_LINE_MAX_LENGTH } from './audit/record.js';
export { verifyAuditSignature } from './audit/algorithms.js';
export { shortId } from './hash.js';
