import type { ManagerRequestErrorCode } from '../errors.js';

// The HTTP status of every code a manager route can answer with. Codes that are not here are
// server faults (500 INTERNAL_ERROR): a client mistake always has a code in this table.

const managerStatus: Record<ManagerRequestErrorCode, number> = {
  BAD_REQUEST: 400,
  BODY_MALFORMED: 400,
  BODY_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  NOT_FOUND: 404,
  TEXT_MALFORMED: 400,
  NUMBER_OUT_OF_RANGE: 400,
  JSON_TOO_DEEP: 400,
  JSON_TOO_LARGE: 400,
  AUTH_REQUIRED: 401,
  AUTH_INVALID: 401,
  TOKEN_SCOPE_INSUFFICIENT: 403,
  CREDENTIAL_INVALID: 401,
  CREDENTIAL_AGENT_MISMATCH: 403,
  MACHINE_ID_MISMATCH: 403,
  AGENT_NOT_FOUND: 404,
  AGENT_ALREADY_ENROLLED: 409,
  AGENT_VERSION_TOO_OLD: 426,
  ENROLLMENT_TOKEN_INVALID: 403,
  ENROLLMENT_TOKEN_EXPIRED: 403,
  ENROLLMENT_TOKEN_EXHAUSTED: 403,
  ENROLLMENT_TOKEN_REVOKED: 403,
  ENROLLMENT_TOKEN_NOT_FOUND: 404,
  COMMAND_UNKNOWN: 409,
  NONCE_MISSING: 403,
  NONCE_UNKNOWN: 403,
  NONCE_WRONG_COMMAND: 403,
  NONCE_VERSION_MISMATCH: 409,
  TRUST_POLICY_MISSING: 409,
  RELEASE_EXISTS: 409,
  RELEASE_NOT_FOUND: 404,
  RELEASE_NOT_UPLOADED: 409,
  UPLOAD_NOT_EXPECTED: 409,
  PLATFORM_REQUIRED: 400,
  DOWNLOAD_UNAUTHORIZED: 401,
  PRESIGNED_URL_INVALID: 403,
  PRESIGNED_URL_EXPIRED: 403,
  RANGE_NOT_SATISFIABLE: 416,
  DEPLOYMENT_ACTIVE: 409,
  DEPLOYMENT_NOT_FOUND: 404,
  DEPLOYMENT_ACTION_INVALID: 409,
  DEPLOYMENT_VERSION_REQUIRED: 400,
  ROLLOUT_OPTIONS_INVALID: 400,
  PUSH_URL_INVALID: 400,
  AUDIT_UNAVAILABLE: 503,
  SHUTTING_DOWN: 503,
  OVERLOADED: 503,
  NOT_READY: 503,
  INTERNAL_ERROR: 500,
};

// Protocol codes a route can answer with (the refusal keeps the protocol's code).
const protocolStatus: Record<string, number> = {
  // update-nonce checks on a reported result
  NONCE_MALFORMED: 403,
  NONCE_SIGNATURE_INVALID: 403,
  NONCE_WRONG_AGENT: 403,
  NONCE_REPLAYED: 409,
  // release verification on publish
  RELEASE_MALFORMED: 400,
  RELEASE_SIGNATURE_INVALID: 403,
  RELEASE_UNTRUSTED_SIGNER: 403,
  RELEASE_THRESHOLD_NOT_MET: 403,
  RELEASE_WRONG_ARTIFACT: 422,
  RELEASE_WRONG_PLATFORM: 422,
  RELEASE_EXPIRED: 422,
  ARTIFACT_TOO_LARGE: 413,
  ARTIFACT_TOO_SHORT: 422,
  ARTIFACT_DIGEST_MISMATCH: 422,
  // wire data
  VERSION_INVALID: 400,
  SCHEMA_INVALID: 400,
};

const statuses: ReadonlyMap<string, number> = new Map([...Object.entries(managerStatus), ...Object.entries(protocolStatus)]);

/** The status a code is answered with, or undefined for a code no route answers with (a server fault). */
export function statusOf(code: string): number | undefined {
  return statuses.get(code);
}
