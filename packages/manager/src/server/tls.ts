import { X509Certificate } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import { readFile, stat } from 'node:fs/promises';
import { ManagerError } from '../errors.js';
import type { ManagerTls } from './admission.js';

// The manager's own HTTPS (`drover manager start --tls-cert F --tls-key F`): a PEM certificate chain
// and its private key, checked before the manager listens so a wrong pair, an expired certificate or
// a key others may read stops the start with TLS_INVALID instead of failing every handshake later.
// TLS 1.2 is the minimum. Behind a reverse proxy that terminates TLS, leave them out
// (docs/operations.md).

function tlsInvalid(message: string): ManagerError {
  return new ManagerError('TLS_INVALID', message);
}

/** Reads and checks a certificate chain and its key for {@link ManagerTls}; throws TLS_INVALID. */
export async function loadManagerTls(certFile: string, keyFile: string, now: Date = new Date()): Promise<ManagerTls> {
  const read = async (path: string, what: string): Promise<string> => {
    try {
      return await readFile(path, 'utf8');
    } catch (error) {
      throw tlsInvalid(`The TLS ${what} ${path} cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'}). Give the path of a PEM file the manager's user can read.`);
    }
  };
  const cert = await read(certFile, 'certificate');
  const key = await read(keyFile, 'key');
  // The key is a secret: a file others may read is refused, as the manager's own keys are.
  const { mode } = await stat(keyFile);
  if ((mode & 0o077) !== 0) {
    throw tlsInvalid(`The TLS key ${keyFile} is readable by other users (mode ${(mode & 0o777).toString(8)}). Run chmod 600 ${keyFile}.`);
  }
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(cert);
  } catch {
    throw tlsInvalid(`${certFile} is not a PEM certificate (-----BEGIN CERTIFICATE-----).`);
  }
  if (Date.parse(leaf.validTo) <= now.getTime()) throw tlsInvalid(`The TLS certificate ${certFile} expired on ${new Date(leaf.validTo).toISOString()}. Renew it.`);
  if (Date.parse(leaf.validFrom) > now.getTime()) throw tlsInvalid(`The TLS certificate ${certFile} is not valid before ${new Date(leaf.validFrom).toISOString()}. Check the clock, or the certificate.`);
  try {
    createSecureContext({ cert, key, minVersion: 'TLSv1.2' });
  } catch (error) {
    const why = error instanceof Error ? error.message.replace(/\s+/g, ' ').slice(0, 200) : 'unusable';
    throw tlsInvalid(`The TLS key ${keyFile} does not go with the certificate ${certFile}, or is not a PEM private key (${why}).`);
  }
  return { cert, key };
}
