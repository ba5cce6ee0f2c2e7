// Limits and defaults of the agent SDK, in one place, each with its unit.
/** The agent SDK's limits and defaults, each with its unit: body size and read time, Retry-After, timeouts. */
export const limits = {
  maxBodyBytes: 16 * 1024, // bytes: a shutdown request body; reading stops at this limit
  bodyReadTimeoutMs: 10_000, // ms: a body still arriving after this is refused (slow-loris)
  defaultRetryAfterSeconds: 5, // seconds: Retry-After on a 503 when the agent is busy
  defaultOnShutdownTimeoutMs: 30_000, // ms: onShutdown still running after this is abandoned and the process exits 1
  responseFlushFallbackMs: 2_000, // ms: shutdown proceeds after this even if an adapter never reports the 200 sent
  webResponseGraceMs: 50, // ms: the Web adapter cannot see the 200 leave, so it waits this long before proceeding
  maxTimerMs: 2_147_483_647, // ms: the largest delay setTimeout honours (larger values fire at once)
  criticalNameMaxLength: 256, // characters: a section name is echoed in 503 bodies and logs
  versionMaxLength: 128, // characters: the version the health route reports
} as const;

/** The agent's shutdown route (`POST`), CIRIS-compatible: the manager or droverd asks the agent to stop here. */
export const SHUTDOWN_PATH = '/v1/system/shutdown';
/** The agent's health route (`GET`): its status, version and whether it is busy. */
export const HEALTH_PATH = '/v1/system/health';
