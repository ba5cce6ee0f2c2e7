// What a KmsSigner and its worker thread (kms-worker.ts) say to each other.
import type { MessagePort } from 'node:worker_threads';

/** The worker's configuration, handed over at its start. */
export interface KmsWorkerData {
  port: MessagePort;
  /** One Int32: bumped by the worker after each reply, what the caller's thread waits on. */
  signal: SharedArrayBuffer;
  region: string;
  endpoint?: string | undefined;
  maxAttempts: number;
  connectTimeoutMs: number;
  requestTimeoutMs: number;
}

/** A call, as the signer asks for it. */
export type KmsCall =
  | { op: 'publicKey'; keyId: string }
  | { op: 'describe'; keyId: string }
  /** `algorithm`: KMS's SigningAlgorithmSpec (default ED25519_SHA_512). */
  | { op: 'sign'; keyId: string; message: Uint8Array; algorithm?: string }
  | { op: 'mac'; keyId: string; message: Uint8Array }
  | { op: 'verifyMac'; keyId: string; message: Uint8Array; mac: Uint8Array };
/** A call as sent to the worker: numbered, so that a late reply to an earlier call is never taken for this one's. */
export type KmsRequest = KmsCall & { id: number };

export type KmsReply =
  | { id: number; ok: true; op: 'publicKey'; keyArn: string; keySpec: string; keyUsage: string; signingAlgorithms: string[]; publicKey: Uint8Array }
  | { id: number; ok: true; op: 'describe'; keyArn: string; keySpec: string; keyUsage: string; enabled: boolean; macAlgorithms: string[]; signingAlgorithms: string[] }
  | { id: number; ok: true; op: 'sign'; signature: Uint8Array }
  | { id: number; ok: true; op: 'mac'; mac: Uint8Array }
  /** `valid` false: KMS answered KMSInvalidMacException, its verdict on a wrong MAC. */
  | { id: number; ok: true; op: 'verifyMac'; valid: boolean }
  | { id: number; ok: false; name: string; code?: string; status?: number };
