import { readFile, stat } from 'node:fs/promises';
import { Ed25519PrivateKey } from '@drover/protocol';
import type { Ed25519Signer } from '@drover/protocol';
import type { Logger } from 'pino';
import { ManagerError } from './errors.js';
import { openKmsSigner } from './kms/ed25519-key.js';
import { isKmsKeyName } from './kms/key-name.js';
import { openPkcs11Signer } from './pkcs11/ed25519-key.js';
import { isPkcs11Uri } from './pkcs11/uri.js';

/** A key held by a device or service that never hands out its private half (an HSM, AWS KMS). */
export interface ExternalSigner extends Ed25519Signer {
  /** The key's name (`pkcs11:` URI without PIN source or module path, or `awskms:` name), for messages and logs. */
  readonly uri: string;
  /** Ends the token session, or stops the thread that talks to KMS. */
  close(): void;
}

/** True when a key is named as one in an HSM (`pkcs11:`) or in AWS KMS (`awskms:`) rather than by a file path. */
export function isExternalKeyName(spec: string): boolean {
  return isPkcs11Uri(spec) || isKmsKeyName(spec);
}

/** Opens a `pkcs11:` or `awskms:` key; the codes are those of `openPkcs11Signer` and `openKmsSigner`. */
export function openExternalSigner(spec: string, env: Record<string, string | undefined>): ExternalSigner {
  return isKmsKeyName(spec) ? openKmsSigner(spec, { env }) : openPkcs11Signer(spec, { env });
}

/** A key the manager signs with (a file's, or one in a token), and whether it lives only in memory. */
export interface LoadedKey {
  key: Ed25519Signer;
  /** True for a key generated at start because DEV_ALLOW_EPHEMERAL=true and no file was given. */
  ephemeral: boolean;
  /** Ends the key's token session (a pkcs11: key) or KMS thread (an awskms: key); absent for a file key. */
  close?: () => void;
}

/** True when the environment allows keys that die with the process (development only). */
export function ephemeralKeysAllowed(env: Record<string, string | undefined>): boolean {
  return env['DEV_ALLOW_EPHEMERAL'] === 'true';
}

/**
 * Loads a signing key (the manager's nonce key, the audit key) from a PEM or seed file, or opens it
 * in an HSM or AWS KMS when `path` is a `pkcs11:` URI or an `awskms:` name (its private half then never reaches this process). Without a
 * file, an ephemeral key is generated only when `DEV_ALLOW_EPHEMERAL=true`: a manager restarted
 * with a new key could not be verified against what hosts pinned, nor its old audit records
 * against signers.json, so production refuses to start instead.
 */
export async function loadSigningKey(
  path: string | undefined,
  what: string,
  options: { env: Record<string, string | undefined>; logger?: Logger | undefined },
): Promise<LoadedKey> {
  if (path === undefined) {
    if (!ephemeralKeysAllowed(options.env)) {
      throw new ManagerError('KEY_FILE_MISSING', `No ${what} file is configured. Create one with \`drover manager init\` (or \`drover keygen\`), or set DEV_ALLOW_EPHEMERAL=true for a throwaway development key.`);
    }
    const key = Ed25519PrivateKey.generate();
    options.logger?.warn({ event: 'key.ephemeral', what, keyid: key.keyid }, `using an ephemeral ${what} (DEV_ALLOW_EPHEMERAL=true): it is lost when the manager stops`);
    return { key, ephemeral: true };
  }
  if (isExternalKeyName(path)) {
    const key = openExternalSigner(path, options.env);
    const kms = isKmsKeyName(path);
    options.logger?.info({ event: kms ? 'key.awskms' : 'key.pkcs11', what, keyid: key.keyid, uri: key.uri }, `the ${what} is in ${kms ? 'AWS KMS' : 'a PKCS#11 token'}`);
    const close = (): void => {
      key.close();
    };
    return { key, ephemeral: false, close };
  }
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new ManagerError('KEY_FILE_MISSING', `The ${what} file ${path} does not exist. Create it with \`drover manager init\`, or fix the path in the manager config.`, { cause: error });
    }
    throw error;
  }
  const info = await stat(path);
  // A key readable by others is a key that may already be copied: say so loudly.
  if ((info.mode & 0o077) !== 0) {
    options.logger?.warn({ event: 'key.permissions', what, path, mode: (info.mode & 0o777).toString(8) }, `the ${what} file is readable by other users: chmod 600 it`);
  }
  return { key: Ed25519PrivateKey.from(bytes), ephemeral: false };
}

/** Reads a one-line secret file (a token, a Fernet key), trimmed; undefined when the path is undefined. */
export async function readSecretFile(path: string | undefined, what: string): Promise<string | undefined> {
  if (path === undefined) return undefined;
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new ManagerError('KEY_FILE_MISSING', `The ${what} file ${path} does not exist. Create it with \`drover manager init\`, or fix the path in the manager config.`, { cause: error });
    }
    throw error;
  }
}
