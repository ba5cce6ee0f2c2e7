// The keys a CLI command signs with: a private key file (PKCS#8 PEM from `drover keygen`), a key in
// an HSM or token named by a `pkcs11:` URI, or a key in AWS KMS named `awskms:...`, whose private
// halves never leave the device or the service.

import { Ed25519PrivateKey } from '@drover/protocol';
import type { Ed25519Signer } from '@drover/protocol';
import type { KmsKeyOptions, KmsSigner, Pkcs11KeyOptions, Pkcs11Signer } from '@drover/manager';
import { readInput } from './fs-atomic.js';

/** Reads a private key file; the key never appears in output or errors. */
export async function loadPrivateKey(path: string): Promise<Ed25519PrivateKey> {
  return Ed25519PrivateKey.from(await readInput(path, 'Key file'));
}

/** True when a --key names a key in a token rather than a file (RFC 7512 URIs start so). */
export function isPkcs11Key(spec: string): boolean {
  return spec.toLowerCase().startsWith('pkcs11:');
}

/** True when a --key names a key in AWS KMS (`awskms:KEY_ID`, `awskms:alias/NAME`, `awskms:ARN`). */
export function isKmsKey(spec: string): boolean {
  return spec.toLowerCase().startsWith('awskms:');
}

/** The AWS KMS backend, loaded only when an awskms: key is used (as {@link pkcs11Backend}). */
export async function kmsBackend(): Promise<(name: string, options: KmsKeyOptions) => KmsSigner> {
  const { openKmsSigner } = await import('@drover/manager');
  return openKmsSigner;
}

/**
 * @drover/manager (where the PKCS#11 backend lives), loaded only when a pkcs11: key is used: it
 * brings better-sqlite3 and fastify, which signing with key files never needs (lazy-manager.test.ts).
 */
export async function pkcs11Backend(): Promise<Record<'openPkcs11Signer' | 'generatePkcs11Key', (uri: string, options: Pkcs11KeyOptions) => Pkcs11Signer>> {
  const { openPkcs11Signer, generatePkcs11Key } = await import('@drover/manager');
  return { openPkcs11Signer, generatePkcs11Key };
}

/**
 * The RSA audit key of a token or of AWS KMS (`drover keygen --algorithm rsa-sha256`): generated in
 * the token, or read from KMS; answers the DER SubjectPublicKeyInfo and its bits.
 */
export async function rsaAuditKeyBackend(): Promise<{
  generateInToken(uri: string, env: Record<string, string | undefined>, bits: number): { spki: Uint8Array; bits: number };
  readFromKms(name: string, env: Record<string, string | undefined>): { spki: Uint8Array; bits: number };
}> {
  const { generatePkcs11RsaKey, openPkcs11AuditSigner, openKmsAuditSigner } = await import('@drover/manager');
  const publicKey = (opened: { publicKey: { algorithm: string }; close(): void }): { spki: Uint8Array; bits: number } => {
    try {
      const key = opened.publicKey as { algorithm: 'rsa-sha256'; spki: Uint8Array; bits: number };
      return { spki: key.spki, bits: key.bits };
    } finally {
      opened.close();
    }
  };
  return {
    generateInToken: (uri, env, bits) => {
      generatePkcs11RsaKey(uri, { env, bits });
      return publicKey(openPkcs11AuditSigner(uri, { env, algorithm: 'rsa-sha256' }));
    },
    readFromKms: (name, env) => publicKey(openKmsAuditSigner(name, { env, algorithm: 'rsa-sha256' })),
  };
}

/** Signing keys, open until `close()` (which ends their token sessions and KMS threads). */
export interface OpenKeys {
  keys: Ed25519Signer[];
  close(): void;
}

/**
 * Opens each `--key`: a `pkcs11:` URI (its PIN from `pin-source=` or DROVER_PKCS11_PIN, its module
 * from `module-path=` or DROVER_PKCS11_MODULE), an `awskms:` name (region from the ARN or AWS_REGION,
 * credentials as the AWS SDK finds them) or a key file. If one cannot be opened, those already
 * open are closed and the error is thrown: nothing has been signed or written yet.
 */
export async function openSigningKeys(specs: readonly string[], env: Record<string, string | undefined>): Promise<OpenKeys> {
  const tokens: (Pkcs11Signer | KmsSigner)[] = [];
  const close = (): void => {
    for (const key of tokens) key.close();
  };
  const keys: Ed25519Signer[] = [];
  try {
    for (const spec of specs) {
      if (isKmsKey(spec)) {
        const key = (await kmsBackend())(spec, { env });
        tokens.push(key);
        keys.push(key);
      } else if (isPkcs11Key(spec)) {
        const key = (await pkcs11Backend()).openPkcs11Signer(spec, { env });
        tokens.push(key);
        keys.push(key);
      } else {
        // REQUIRE_KMS=true (a protected branch's CI): a key file is refused before it is read.
        if (env['REQUIRE_KMS'] === 'true') (await import('@drover/manager')).requireExternalKey(env, 'release signing key', `the key file ${spec}`, false);
        keys.push(await loadPrivateKey(spec));
      }
    }
  } catch (error) {
    close();
    throw error;
  }
  return { keys, close };
}
