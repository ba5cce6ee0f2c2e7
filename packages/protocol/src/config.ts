// Limits and defaults of the protocol, in one place, each with its unit.
export const limits = {
  envelopeMaxBytes: 1024 * 1024, // bytes: a DSSE envelope as JSON text
  nonceMaxLength: 4096, // characters: a compact update nonce
  nonceClockSkewSeconds: 60, // seconds of clock difference tolerated before `iat`
  nonceDefaultTtlSeconds: 3600, // seconds an update nonce lives by default
  releaseDefaultExpirySeconds: 90 * 86400, // seconds: a release expires (freeze) after 90 days by default
  releaseMaxSignatures: 16, // signatures in one envelope
} as const;
