import { CredentialResponseSchema, matchesSchema, tokenId } from '@drover/protocol';
import type { HttpClient } from '@drover/http';
import { endpoint } from '@drover/http';
import { limits } from '../config.js';
import type { Logger } from '../logger.js';
import type { Failpoints } from '../update/failpoints.js';
import { saveCredentials } from './credentials.js';
import type { Credentials } from './credentials.js';

// Credential rotation (decision 0032). Once the credential is older than the rotation period,
// after a check-in the manager accepted, droverd asks for a new one (POST
// /v1/agents/{id}/credential), which the manager holds as pending beside the current one. droverd
// writes the new one to credentials.json with the current one kept as `previousCredential`, then
// checks in with the new one at once: its first use makes it the credential on the manager and the
// old one is refused from then on. The first check-in the new one passes drops the previous one.
//
// A kill at any moment leaves a host that can check in: before the file is written, the old
// credential is still the manager's current one (a pending one nobody holds is replaced by the
// next rotation); after, the new one is the manager's pending or current one; and if the manager
// ever refuses the new one (401 CREDENTIAL_INVALID, e.g. a database restored from before the
// rotation), droverd goes back to the previous one. Failpoints: `credential:requesting`,
// `credential:received` (answered, file not written), `credential:saved`, `credential:confirmed`.

/** What a {@link CredentialRotation} needs. */
export interface CredentialRotationOptions {
  http: HttpClient;
  /** The credentials every manager call reads its credential from: rotated in place. */
  credentials: Credentials;
  /** credentials.json. */
  path: string;
  machineId: string;
  /** Rotate once the credential is this old; 0: never. */
  rotationMs: number;
  failpoints: Failpoints;
  logger: Logger;
  now?: () => number;
}

/** Rotates the host's credential on a schedule, crash-safe; driven by the check-in loop. */
export class CredentialRotation {
  readonly #o: CredentialRotationOptions;
  readonly #now: () => number;
  /** No new attempt before this time (ms) after one failed. */
  #notBefore = 0;

  constructor(options: CredentialRotationOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  /**
   * After a check-in the manager accepted with the current credential: drops a kept previous one
   * (the new one works), then rotates when due. True when a new credential is now in use: check in
   * again at once, so the manager promotes it and the old one stops working. Never throws.
   */
  async afterAccepted(signal?: AbortSignal): Promise<boolean> {
    const o = this.#o;
    const c = o.credentials;
    try {
      if (c.previousCredential !== undefined) {
        const previous = c.previousCredential;
        delete c.previousCredential;
        await this.#save(() => {
          c.previousCredential = previous;
        });
        o.failpoints.hit('credential:confirmed');
        o.logger.info({ event: 'credential.rotated', credentialId: tokenId(c.credential), previousCredentialId: tokenId(previous) }, 'The manager accepted the rotated credential; the previous one is forgotten');
      }
      if (!this.#due()) return false;
      return await this.#rotate(signal);
    } catch (error) {
      this.#notBefore = this.#now() + Math.min(o.rotationMs, limits.credentialRotationRetryMs);
      o.logger.warn({ event: 'credential.rotation_failed', err: error, retryInMs: this.#notBefore - this.#now() }, 'Could not rotate the credential; the current one stays in use and it is tried again later');
      return false;
    }
  }

  /**
   * After the manager refused the current credential with `code`: when it is a rotated one not yet
   * accepted and the refusal is CREDENTIAL_INVALID, goes back to the previous credential. True when
   * it did (check in again with it).
   */
  async afterRefused(status: number, code: string): Promise<boolean> {
    const c = this.#o.credentials;
    const previous = c.previousCredential;
    if (status !== 401 || code !== 'CREDENTIAL_INVALID' || previous === undefined) return false;
    const refused = c.credential;
    c.credential = previous;
    delete c.previousCredential;
    delete c.credentialIssuedAt;
    // The previous credential is used even if the file cannot be written now (a full disk): the file
    // still holds both, and after a restart the next refusal goes back again.
    try {
      await saveCredentials(this.#o.path, c);
    } catch (error) {
      this.#o.logger.error({ event: 'credential.revert_unsaved', err: error }, 'Went back to the previous credential, but could not write credentials.json; it is written at the next change');
    }
    // Not straight into another rotation the manager might refuse again: after the usual wait.
    this.#notBefore = this.#now() + Math.min(this.#o.rotationMs, limits.credentialRotationRetryMs);
    this.#o.logger.warn(
      { event: 'credential.reverted', refusedCredentialId: tokenId(refused), credentialId: tokenId(previous) },
      'The manager refused the rotated credential; back to the previous one',
    );
    return true;
  }

  /**
   * Whether the next accepted check-in has work for afterAccepted (a rotation due, or a previous
   * credential to forget): such a check-in must not be held by the command channel.
   */
  get pending(): boolean {
    return this.#o.credentials.previousCredential !== undefined || this.#due();
  }

  #due(): boolean {
    const { rotationMs, credentials } = this.#o;
    if (rotationMs === 0 || this.#now() < this.#notBefore) return false;
    const issuedAt = Date.parse(credentials.credentialIssuedAt ?? credentials.enrolledAt);
    const age = this.#now() - issuedAt;
    // An unreadable time counts as old, and so does one over an hour ahead (written while the clock
    // was wrong): rotating fixes both.
    return Number.isNaN(issuedAt) || age >= rotationMs || age < -3_600_000;
  }

  async #rotate(signal?: AbortSignal): Promise<boolean> {
    const o = this.#o;
    const c = o.credentials;
    o.failpoints.hit('credential:requesting');
    const response = await o.http.json({
      method: 'POST',
      url: endpoint(c.managerUrl, `/v1/agents/${encodeURIComponent(c.agentId)}/credential`),
      headers: { authorization: `Bearer ${c.credential}`, 'x-machine-id': o.machineId },
      // Sent twice, the manager issues twice: the second pending credential replaces the first.
      idempotent: true,
      ...(signal === undefined ? {} : { signal }),
    });
    if (response.status !== 200 || !matchesSchema(CredentialResponseSchema, response.body)) {
      const code = (response.body as { error?: { code?: unknown } } | undefined)?.error?.code;
      // A manager from before rotation answers 404: asked again a period later, not every check-in.
      const waitMs = response.status === 404 ? o.rotationMs : Math.min(o.rotationMs, limits.credentialRotationRetryMs);
      this.#notBefore = this.#now() + waitMs;
      o.logger.warn(
        { event: 'credential.rotation_refused', status: response.status, code: typeof code === 'string' ? code.slice(0, 64) : undefined, retryInMs: waitMs },
        response.status === 404 ? 'The manager does not rotate credentials (an older version); the current credential stays in use' : 'The manager did not rotate the credential; the current one stays in use',
      );
      return false;
    }
    const issued = response.body;
    o.failpoints.hit('credential:received');
    const before = { credential: c.credential, credentialIssuedAt: c.credentialIssuedAt };
    c.previousCredential = c.credential;
    c.credential = issued.credential;
    // This host's clock decides when the next rotation is due, not the manager's.
    c.credentialIssuedAt = new Date(this.#now()).toISOString();
    await this.#save(() => {
      c.credential = before.credential;
      delete c.previousCredential;
      if (before.credentialIssuedAt === undefined) delete c.credentialIssuedAt;
      else c.credentialIssuedAt = before.credentialIssuedAt;
    });
    o.failpoints.hit('credential:saved');
    o.logger.info({ event: 'credential.issued', credentialId: tokenId(issued.credential), previousCredentialId: tokenId(before.credential) }, 'Rotated the credential; checking in with the new one');
    return true;
  }

  /** Writes credentials.json (atomic, 0600); on failure undoes the in-memory change and rethrows. */
  async #save(undo: () => void): Promise<void> {
    try {
      await saveCredentials(this.#o.path, this.#o.credentials);
    } catch (error) {
      undo();
      throw error;
    }
  }
}
