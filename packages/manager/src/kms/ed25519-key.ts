// An Ed25519 key that lives in AWS KMS (key spec ECC_NIST_EDWARDS25519): its public key read once
// with GetPublicKey, each signature made by Sign (ED25519_SHA_512 over the RAW message), so the
// private half never leaves KMS. It signs as drover's local key does (a raw 64-byte RFC 8032
// signature), so every verifier of releases, nonces, minisign files and audit records accepts it.

import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MessageChannel, receiveMessageOnPort, Worker } from 'node:worker_threads';
import type { MessagePort } from 'node:worker_threads';
import { Ed25519PublicKey } from '@drover/protocol';
import type { Ed25519Signer } from '@drover/protocol';
import { ManagerError } from '../errors.js';
import type { ManagerKmsErrorCode } from '../errors.js';
import { parseKmsKeyName } from './key-name.js';
import type { KmsKeyName } from './key-name.js';
import type { KmsCall, KmsReply, KmsWorkerData } from './protocol.js';

const KEY_SPEC = 'ECC_NIST_EDWARDS25519';
const SIGNING_ALGORITHM = 'ED25519_SHA_512';
const SIGNATURE_LENGTH = 64; // bytes
const RAW_MESSAGE_MAX = 4096; // bytes: the largest message KMS signs with MessageType RAW
// DER of an Ed25519 SubjectPublicKeyInfo (RFC 8410) before its 32 key bytes: what GetPublicKey returns.
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const limits = {
  maxAttempts: 3, // tries per call (the SDK's retry strategy: throttling, 5xx, network errors)
  connectTimeoutMs: 5_000,
  requestTimeoutMs: 10_000,
  callTimeoutMs: 60_000, // the longest a sign() blocks its caller, retries included
};

/** Options of {@link openKmsSigner}. */
export interface KmsKeyOptions {
  /**
   * Where AWS_REGION, DROVER_KMS_ENDPOINT / AWS_ENDPOINT_URL_KMS and the AWS credentials
   * (AWS_ACCESS_KEY_ID, AWS_PROFILE, web identity, ...) are read (default: `process.env`).
   */
  env?: Record<string, string | undefined>;
}

/**
 * An Ed25519 key held in AWS KMS: an `Ed25519Signer` (from `@drover/protocol`) whose private half
 * never leaves KMS. `sign` blocks its caller for one KMS round trip. Close it when done.
 */
export interface KmsSigner extends Ed25519Signer {
  /** The key's name as given (`awskms:...`), for messages and logs. */
  readonly uri: string;
  /** The key's ARN, as KMS reports it. */
  readonly keyArn: string;
  /** Stops the thread that talks to KMS. */
  close(): void;
}

/** The thread that holds the KMS client, and a synchronous call into it. */
export class KmsChannel {
  readonly #worker: Worker;
  readonly #port: MessagePort;
  readonly #signal = new Int32Array(new SharedArrayBuffer(4));
  #next = 0;
  #closed = false;

  constructor(name: KmsKeyName, env: Record<string, string | undefined>) {
    const { port1, port2 } = new MessageChannel();
    const data: KmsWorkerData = { port: port2, signal: this.#signal.buffer, region: name.region, endpoint: name.endpoint, ...limits };
    // The credentials stay in the worker's environment; they never cross the channel. The SDK's
    // notice that its later releases need Node 22 is silenced: drover pins the SDK's line for its
    // Node 20.18 floor (test/packaging/aws-sdk-node-floor.test.ts), and a CLI user cannot act on it.
    const workerEnv: Record<string, string> = { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };
    for (const [name, value] of Object.entries(env)) if (value !== undefined) workerEnv[name] = value;
    this.#worker = new Worker(BOOTSTRAP, { eval: true, workerData: { ...data, entry: workerEntry() }, transferList: [port2], env: workerEnv });
    // A worker that fails says so through the channel (BOOTSTRAP); its 'error' event must not end the process.
    this.#worker.on('error', () => undefined);
    this.#worker.unref();
    this.#port = port1;
  }

  call(request: KmsCall, what: string): KmsReply {
    if (this.#closed) throw new ManagerError('KMS_FAILED', `The KMS key was closed before ${what}. Open it again.`);
    const id = (this.#next += 1);
    const seen = Atomics.load(this.#signal, 0);
    this.#port.postMessage({ ...request, id });
    const deadline = Date.now() + limits.callTimeoutMs;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0 || Atomics.wait(this.#signal, 0, seen, left) === 'timed-out') {
        throw new ManagerError('KMS_UNREACHABLE', `AWS KMS did not answer within ${limits.callTimeoutMs / 1000} s while ${what}. Check the network path to KMS (and DROVER_KMS_ENDPOINT), then run the command again.`);
      }
      // Replies to calls that timed out earlier are dropped: only this call's id is an answer.
      for (let message = receiveMessageOnPort(this.#port); message !== undefined; message = receiveMessageOnPort(this.#port)) {
        const reply = message.message as KmsReply;
        if (reply.id === id) return reply;
        if (reply.id === -1 && !reply.ok) {
          throw new ManagerError('KMS_FAILED', `drover's KMS client could not be loaded (${reply.code ?? 'unknown'}) while ${what}. Reinstall drover (@aws-sdk/client-kms is one of its dependencies).`);
        }
      }
    }
  }

  close(): void {
    this.#closed = true;
    this.#port.close();
    void this.#worker.terminate();
  }
}

/** kms-worker.js beside this module; run from the TypeScript sources (vitest, tsx), the package's build of it. */
function workerEntry(): string {
  const beside = new URL('./kms-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(beside))) return beside.href;
  // A worker thread does not go through the loaders that run .ts sources here.
  return new URL('../../dist/kms/kms-worker.js', import.meta.url).href;
}

// The worker's first code: loads kms-worker.js (built beside this module), and if that fails (the SDK
// missing, a broken install) answers every call with the failure, instead of leaving the caller to
// wait out its timeout for a thread that never started.
const BOOTSTRAP = `
const { workerData } = require('node:worker_threads');
import(workerData.entry).catch((error) => {
  const done = new Int32Array(workerData.signal);
  const reply = { id: -1, ok: false, name: 'KmsClientLoadError', code: String((error && error.code) || 'unknown') };
  workerData.port.on('message', () => { workerData.port.postMessage(reply); Atomics.add(done, 0, 1); Atomics.notify(done, 0); });
});
`;

class KmsEd25519Key implements KmsSigner {
  readonly keyid: string;
  readonly publicKey: Ed25519PublicKey;
  readonly uri: string;
  readonly keyArn: string;
  readonly #channel: KmsChannel;
  readonly #keyId: string;

  constructor(channel: KmsChannel, keyId: string, keyArn: string, publicKey: Ed25519PublicKey, uri: string) {
    this.#channel = channel;
    this.#keyId = keyId;
    this.keyArn = keyArn;
    this.publicKey = publicKey;
    this.keyid = publicKey.keyid;
    this.uri = uri;
  }

  sign(message: Uint8Array): Uint8Array {
    if (message.length > RAW_MESSAGE_MAX) {
      throw new ManagerError('KMS_MESSAGE_TOO_LARGE', `AWS KMS signs at most ${RAW_MESSAGE_MAX} bytes with Ed25519 (ED25519_SHA_512, RAW); this message has ${message.length}. Shorten what is signed (a release's changelog), or sign with a key file or a pkcs11: key.`);
    }
    const reply = this.#channel.call({ op: 'sign', keyId: this.#keyId, message }, `signing with ${this.uri}`);
    if (!reply.ok) throw kmsFailure(reply, `signing with ${this.uri}`, this.uri);
    const signature = reply.op === 'sign' ? new Uint8Array(reply.signature) : new Uint8Array(0);
    // A service that answers with anything but a valid signature of this key must not get it into
    // a release or an audit record: checked here, before any caller writes it.
    if (signature.length !== SIGNATURE_LENGTH || !this.publicKey.verify(message, signature)) {
      throw new ManagerError('KMS_FAILED', `AWS KMS returned a signature that does not verify under ${this.uri}'s public key. Nothing was written; report it, and sign with another key meanwhile.`);
    }
    return signature;
  }

  close(): void {
    this.#channel.close();
  }

  toJSON(): { keyid: string; uri: string } {
    return { keyid: this.keyid, uri: this.uri };
  }
}

/** What a call needs of its key, for the advice of a refusal: the key policy's permissions and the kind of key. */
export interface KmsKeyNeeds {
  permissions: string;
  kind: string;
}

const SIGNING_KEY_NEEDS: KmsKeyNeeds = { permissions: 'kms:GetPublicKey and kms:Sign', kind: `an asymmetric KMS key of spec ${KEY_SPEC} with usage SIGN_VERIFY` };

/** The code and message of a refused or failed KMS call; `name` is the AWS error's name. */
export function kmsFailure(reply: { name: string; code?: string; status?: number }, what: string, uri: string, needs: KmsKeyNeeds = SIGNING_KEY_NEEDS): ManagerError {
  const { name } = reply;
  let code: ManagerKmsErrorCode = 'KMS_FAILED';
  let advice = 'Run the command again; if it persists, see the key in the AWS console or CloudTrail.';
  if (name === 'NotFoundException') {
    code = 'KMS_KEY_NOT_FOUND';
    advice = 'Check the key id, alias or ARN and the region (AWS_REGION, or the ARN\'s), and the account the credentials belong to.';
  } else if (['AccessDeniedException', 'UnrecognizedClientException', 'InvalidSignatureException', 'IncompleteSignature', 'InvalidClientTokenId', 'ExpiredTokenException', 'MissingAuthenticationToken', 'CredentialsProviderError'].includes(name)) {
    code = 'KMS_ACCESS_DENIED';
    advice = `Check the AWS credentials drover runs with (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or the instance role) and that the key policy grants them ${needs.permissions}.`;
  } else if (name === 'DisabledException' || name === 'KMSInvalidStateException') {
    code = 'KMS_KEY_DISABLED';
    advice = 'Enable the key (aws kms enable-key), or cancel its pending deletion; a key pending import has no key material yet.';
  } else if (name === 'InvalidKeyUsageException' || name === 'UnsupportedOperationException') {
    code = 'KMS_KEY_SPEC_UNSUPPORTED';
    advice = `Use ${needs.kind}.`;
  } else if (isUnreachable(reply)) {
    code = 'KMS_UNREACHABLE';
    advice = 'Check the network path to KMS (and DROVER_KMS_ENDPOINT / AWS_ENDPOINT_URL_KMS if set), then run the command again.';
  }
  return new ManagerError(code, `AWS KMS refused ${what} (${name}${reply.status === undefined ? '' : `, HTTP ${reply.status}`}). ${advice}`, { details: { key: uri } });
}

function isUnreachable(reply: { name: string; code?: string; status?: number }): boolean {
  if (reply.status !== undefined && reply.status >= 500) return true;
  if (['ThrottlingException', 'KMSInternalException', 'DependencyTimeoutException', 'TimeoutError', 'RequestTimeout'].includes(reply.name)) return true;
  return reply.code !== undefined && /^E[A-Z]+$/.test(reply.code) && reply.status === undefined;
}

/**
 * Opens the Ed25519 key an `awskms:` name gives (a key id, `alias/NAME` or an ARN; the region from
 * the ARN or AWS_REGION; another endpoint from DROVER_KMS_ENDPOINT or AWS_ENDPOINT_URL_KMS): reads
 * its public key with GetPublicKey and checks that it is an Ed25519 signing key. The credentials are
 * the AWS SDK's usual ones (environment, profile, instance or task role); they need kms:GetPublicKey
 * and kms:Sign on the key.
 *
 * @throws ManagerError `KMS_KEY_NAME_INVALID`, `KMS_REGION_MISSING`, `KMS_KEY_NOT_FOUND`,
 *   `KMS_ACCESS_DENIED`, `KMS_KEY_DISABLED`, `KMS_KEY_SPEC_UNSUPPORTED`, `KMS_UNREACHABLE` or `KMS_FAILED`
 * @example
 * ```ts
 * const key = openKmsSigner('awskms:alias/drover-release', { env: process.env });
 * try {
 *   const envelope = signRelease(payload, [key]);
 * } finally {
 *   key.close();
 * }
 * ```
 */
export function openKmsSigner(spec: string, options: KmsKeyOptions = {}): KmsSigner {
  const env = options.env ?? process.env;
  const name = parseKmsKeyName(spec, env);
  const channel = new KmsChannel(name, env);
  try {
    const reply = channel.call({ op: 'publicKey', keyId: name.keyId }, `reading the public key of ${spec}`);
    if (!reply.ok) throw kmsFailure(reply, `reading the public key of ${spec}`, spec);
    if (reply.op !== 'publicKey') throw new ManagerError('KMS_FAILED', `AWS KMS answered GetPublicKey of ${spec} with something else.`);
    if (reply.keySpec !== KEY_SPEC || reply.keyUsage !== 'SIGN_VERIFY' || !reply.signingAlgorithms.includes(SIGNING_ALGORITHM)) {
      throw new ManagerError('KMS_KEY_SPEC_UNSUPPORTED', `${spec} is a ${reply.keySpec || 'unknown'} key for ${reply.keyUsage || 'unknown use'}; releases, update nonces and minisign files are signed with Ed25519 only (an RSA or HMAC key can sign audit records: AUDIT_SIGNING_ALG). Create a KMS key of spec ${KEY_SPEC} and usage SIGN_VERIFY (aws kms create-key --key-spec ${KEY_SPEC} --key-usage SIGN_VERIFY).`);
    }
    const der = Buffer.from(reply.publicKey);
    if (der.length !== SPKI_PREFIX.length + 32 || !der.subarray(0, SPKI_PREFIX.length).equals(SPKI_PREFIX)) {
      throw new ManagerError('KMS_FAILED', `AWS KMS returned a public key for ${spec} that is not an Ed25519 SubjectPublicKeyInfo.`);
    }
    return new KmsEd25519Key(channel, name.keyId, reply.keyArn, new Ed25519PublicKey(new Uint8Array(der.subarray(SPKI_PREFIX.length))), spec);
  } catch (error) {
    channel.close();
    throw error;
  }
}
