// The keys a CLI command signs with: a private key file (PKCS#8 PEM from `drover keygen`), or a key
// in an HSM or token named by a `pkcs11:` URI, whose private half never leaves the device.

import { Ed25519PrivateKey } from '@drover/protocol';
import type { Ed25519Signer } from '@drover/protocol';
import { isPkcs11Uri, openPkcs11Signer } from '@drover/manager';
import type { Pkcs11Signer } from '@drover/manager';
import { readInput } from './fs-atomic.js';

/** Reads a private key file; the key never appears in output or errors. */
export async function loadPrivateKey(path: string): Promise<Ed25519PrivateKey> {
  return Ed25519PrivateKey.from(await readInput(path, 'Key file'));
}

/** Signing keys, open until `close()` (which ends their token sessions). */
export interface OpenKeys {
  keys: Ed25519Signer[];
  close(): void;
}

/**
 * Opens each `--key`: a `pkcs11:` URI (its PIN from `pin-source=` or DROVER_PKCS11_PIN, its module
 * from `module-path=` or DROVER_PKCS11_MODULE) or a key file. If one cannot be opened, those already
 * open are closed and the error is thrown: nothing has been signed or written yet.
 */
export async function openSigningKeys(specs: readonly string[], env: Record<string, string | undefined>): Promise<OpenKeys> {
  const tokens: Pkcs11Signer[] = [];
  const close = (): void => {
    for (const key of tokens) key.close();
  };
  const keys: Ed25519Signer[] = [];
  try {
    for (const spec of specs) {
      if (isPkcs11Uri(spec)) {
        const key = openPkcs11Signer(spec, { env });
        tokens.push(key);
        keys.push(key);
      } else {
        keys.push(await loadPrivateKey(spec));
      }
    }
  } catch (error) {
    close();
    throw error;
  }
  return { keys, close };
}
