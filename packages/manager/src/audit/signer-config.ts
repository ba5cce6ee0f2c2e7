// The audit signer as the audit-signer seed configures it, by the seed's names (issue 14):
//
//   AUDIT_SIGNING_KEY_SOURCE   kms | pkcs11 | file | env | url   (unset: the manager's audit key file, as before)
//   AUDIT_SIGNING_ALG          ed25519 (default) | rsa-sha256 | hmac-sha256
//   AUDIT_SIGNER_KID           the kid records name (default: derived from the key)
//   AUDIT_SIGNING_KMS_KEY_ID   kms: a key id, alias/NAME or ARN (awskms: prefix optional)
//   AUDIT_SIGNING_PKCS11_URI   pkcs11: the key's RFC 7512 URI (the seed has no name for it)
//   AUDIT_SIGNING_KEY_PATH     file: the key file
//   AUDIT_SIGNING_PRIVATE_KEY  env: the key itself
//   AUDIT_SIGNING_KEY_URL      url: an https:// URL of the key, pinned by
//   AUDIT_SIGNING_KEY_URL_SHA256   the hex SHA-256 of what it serves
//
// A key's text, whatever its source: ed25519, a PKCS#8 PEM or a base64 seed (as `drover keygen`
// writes); rsa-sha256, a PEM private key; hmac-sha256, the base64 of a secret of 32 bytes or more.
//
// REQUIRE_KMS=true accepts only kms and pkcs11, for the audit key and the manager's nonce key, and
// refuses DEV_ALLOW_EPHEMERAL=true beside it: a production manager whose keys could be files is a
// manager whose keys may already have been copied.

import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { HttpClient, userAgent } from '@drover/http';
import { auditAlgorithms, Ed25519PrivateKey, ed25519AuditSigner, hmacAuditSigner, isDroverError, rsaAuditSigner } from '@drover/protocol';
import type { AuditAlgorithm } from '@drover/protocol';
import { fromBase64 } from '@drover/protocol/internal';
import type { Logger } from 'pino';
import { ManagerError } from '../errors.js';
import { openKmsAuditSigner } from '../kms/audit-key.js';
import type { ExternalAuditSigner } from '../kms/audit-key.js';
import { isKmsKeyName } from '../kms/key-name.js';
import { openPkcs11AuditSigner } from '../pkcs11/audit-key.js';
import { isPkcs11Uri } from '../pkcs11/uri.js';
import { PACKAGE_VERSION } from '../version.js';

export const auditKeySources = ['kms', 'pkcs11', 'file', 'env', 'url'] as const;
export type AuditKeySource = (typeof auditKeySources)[number];

const KEY_URL_MAX_BYTES = 64 * 1024; // bytes: a PEM RSA-8192 key is under 7 KiB
const KEY_URL_DEADLINE_MS = 15_000;


/** True when REQUIRE_KMS=true: keys only in KMS or a PKCS#11 token. */
export function kmsRequired(env: Record<string, string | undefined>): boolean {
  return env['REQUIRE_KMS'] === 'true';
}

/**
 * Throws `KMS_REQUIRED` when REQUIRE_KMS=true and `what` would come from anything but KMS or a
 * PKCS#11 token (`source` names where it would come from, for the message).
 */
export function requireExternalKey(env: Record<string, string | undefined>, what: string, source: string, external: boolean): void {
  if (!kmsRequired(env) || external) return;
  throw new ManagerError('KMS_REQUIRED', `REQUIRE_KMS=true, but the ${what} would come from ${source}. Keep it in AWS KMS or a PKCS#11 token (for the audit key: AUDIT_SIGNING_KEY_SOURCE=kms or pkcs11), or unset REQUIRE_KMS outside production.`);
}

/** Refuses REQUIRE_KMS=true beside DEV_ALLOW_EPHEMERAL=true: they cannot both hold. */
export function checkKeyPolicy(env: Record<string, string | undefined>): void {
  if (kmsRequired(env) && env['DEV_ALLOW_EPHEMERAL'] === 'true') {
    throw new ManagerError('KMS_REQUIRED', 'REQUIRE_KMS=true and DEV_ALLOW_EPHEMERAL=true contradict each other: a throwaway key is not a key in KMS. Unset DEV_ALLOW_EPHEMERAL in production.');
  }
}

function configInvalid(message: string): ManagerError {
  return new ManagerError('AUDIT_SIGNER_CONFIG_INVALID', message);
}

function required(env: Record<string, string | undefined>, name: string, source: string): string {
  const value = env[name]?.trim();
  if (value === undefined || value === '') throw configInvalid(`AUDIT_SIGNING_KEY_SOURCE=${source} needs ${name}.`);
  return value;
}

/**
 * Fetches a key (or a public key set) over HTTPS, pinned: what the URL serves must have the
 * SHA-256 given beside it, so neither the server nor anyone between can swap the key.
 *
 * @throws ManagerError `KEY_URL_INSECURE` (not https, or no pin), `KEY_URL_UNREACHABLE`, `KEY_URL_PIN_MISMATCH`
 */
export async function fetchPinned(url: string, sha256Hex: string | undefined, what: string, http?: HttpClient): Promise<Buffer> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ManagerError('KEY_URL_INSECURE', `The ${what} URL is not a URL. Give an https:// URL.`);
  }
  // Never a key over plain HTTP: anyone on the path could serve their own.
  if (parsed.protocol !== 'https:') throw new ManagerError('KEY_URL_INSECURE', `The ${what} URL must be https://, got ${parsed.protocol}//. Serve the key over HTTPS.`);
  const pin = sha256Hex?.trim().toLowerCase();
  if (pin === undefined || !/^[0-9a-f]{64}$/.test(pin)) {
    throw new ManagerError('KEY_URL_INSECURE', `The ${what} URL is not pinned: give the hex SHA-256 of what it serves (sha256sum FILE) in the _SHA256 variable beside it.`);
  }
  const client = http ?? new HttpClient({ userAgent: userAgent('drover-manager', PACKAGE_VERSION), retry: { maxAttempts: 3 }, maxResponseBytes: KEY_URL_MAX_BYTES });
  let body: Buffer;
  try {
    const response = await client.request({ method: 'GET', url: parsed, maxBytes: KEY_URL_MAX_BYTES, deadlineMs: KEY_URL_DEADLINE_MS });
    if (response.status !== 200) throw new Error(`HTTP ${response.status}`);
    body = response.body;
  } catch (error) {
    throw new ManagerError('KEY_URL_UNREACHABLE', `The ${what} could not be fetched from ${parsed.origin}${parsed.pathname}. Check the URL and that the manager reaches it (and trusts its certificate).`, { cause: error });
  }
  const digest = createHash('sha256').update(body).digest();
  if (!timingSafeEqual(digest, Buffer.from(pin, 'hex'))) {
    throw new ManagerError('KEY_URL_PIN_MISMATCH', `What ${parsed.origin}${parsed.pathname} serves does not have the pinned SHA-256: the ${what} was changed or replaced. Nothing was used; check the key and update the pin only if the change is yours.`);
  }
  return body;
}

// A local key's text (or bytes) as a signer of the configured algorithm; never quotes the key.
function localSigner(bytes: Buffer, algorithm: AuditAlgorithm, kid: string | undefined, where: string): ExternalAuditSigner {
  try {
    switch (algorithm) {
      case 'ed25519': {
        const key = Ed25519PrivateKey.from(bytes);
        const signer = ed25519AuditSigner(key);
        return { signer: kid === undefined ? signer : { ...signer, kid }, publicKey: { algorithm, publicKey: key.publicKey }, uri: where, close: () => undefined };
      }
      case 'rsa-sha256': {
        const made = rsaAuditSigner(bytes.toString('utf8'), kid);
        return { signer: made.signer, publicKey: made.key, uri: where, close: () => undefined };
      }
      case 'hmac-sha256': {
        const secret = fromBase64(bytes.toString('utf8').trim());
        if (secret === undefined) throw configInvalid(`The hmac-sha256 audit key from ${where} is not base64. Generate one with \`openssl rand -base64 32\`.`);
        const made = hmacAuditSigner(secret, kid);
        return { signer: made.signer, publicKey: made.key, uri: where, close: () => undefined };
      }
    }
  } catch (error) {
    if (error instanceof ManagerError) throw error;
    if (!isDroverError(error)) throw error;
    throw new ManagerError('AUDIT_SIGNER_CONFIG_INVALID', `The audit key from ${where} is not a ${algorithm} private key (AUDIT_SIGNING_ALG=${algorithm}).`, { cause: error });
  }
}

/**
 * The audit signer AUDIT_SIGNING_KEY_SOURCE configures, or undefined when it is unset (the
 * manager's audit key file then, as before).
 *
 * @throws ManagerError `AUDIT_SIGNER_CONFIG_INVALID`, `KMS_REQUIRED`, `KEY_FILE_MISSING`, the
 *   `KEY_URL_*` codes of {@link fetchPinned}, and the KMS_* / PKCS11_* codes of the backends
 */
export async function auditSignerFromEnv(env: Record<string, string | undefined>, options: { logger?: Logger | undefined; http?: HttpClient } = {}): Promise<ExternalAuditSigner | undefined> {
  const source = env['AUDIT_SIGNING_KEY_SOURCE']?.trim();
  if (source === undefined || source === '') return undefined;
  if (!(auditKeySources as readonly string[]).includes(source)) throw configInvalid(`AUDIT_SIGNING_KEY_SOURCE must be one of ${auditKeySources.join(', ')}, got ${JSON.stringify(source.slice(0, 40))}.`);
  const algText = env['AUDIT_SIGNING_ALG']?.trim() || 'ed25519';
  if (!(auditAlgorithms as readonly string[]).includes(algText)) throw configInvalid(`AUDIT_SIGNING_ALG must be one of ${auditAlgorithms.join(', ')}, got ${JSON.stringify(algText.slice(0, 40))}.`);
  const algorithm = algText as AuditAlgorithm;
  const kid = env['AUDIT_SIGNER_KID']?.trim() || undefined;
  requireExternalKey(env, 'audit key', `AUDIT_SIGNING_KEY_SOURCE=${source}`, source === 'kms' || source === 'pkcs11');
  let opened: ExternalAuditSigner;
  switch (source as AuditKeySource) {
    case 'kms': {
      const id = required(env, 'AUDIT_SIGNING_KMS_KEY_ID', source);
      opened = openKmsAuditSigner(isKmsKeyName(id) ? id : `awskms:${id}`, { env, algorithm, kid });
      break;
    }
    case 'pkcs11': {
      const uri = required(env, 'AUDIT_SIGNING_PKCS11_URI', source);
      if (!isPkcs11Uri(uri)) throw configInvalid('AUDIT_SIGNING_PKCS11_URI must be a pkcs11: URI (RFC 7512).');
      opened = openPkcs11AuditSigner(uri, { env, algorithm, kid });
      break;
    }
    case 'file': {
      const path = required(env, 'AUDIT_SIGNING_KEY_PATH', source);
      let bytes: Buffer;
      try {
        bytes = await readFile(path);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new ManagerError('KEY_FILE_MISSING', `The audit key file ${path} (AUDIT_SIGNING_KEY_PATH) does not exist.`, { cause: error });
        throw error;
      }
      opened = localSigner(bytes, algorithm, kid, path);
      break;
    }
    case 'env':
      opened = localSigner(Buffer.from(required(env, 'AUDIT_SIGNING_PRIVATE_KEY', source)), algorithm, kid, 'AUDIT_SIGNING_PRIVATE_KEY');
      break;
    case 'url': {
      const url = required(env, 'AUDIT_SIGNING_KEY_URL', source);
      const body = await fetchPinned(url, env['AUDIT_SIGNING_KEY_URL_SHA256'], 'audit key', options.http);
      opened = localSigner(body, algorithm, kid, 'AUDIT_SIGNING_KEY_URL');
      break;
    }
  }
  options.logger?.info({ event: 'audit.signer', source, algorithm: opened.signer.algorithm, kid: opened.signer.kid }, `the audit key comes from ${source} (${opened.signer.algorithm ?? 'ed25519'})`);
  return opened;
}
