// Every limit and default of droverd, in one place, each with its unit. droverd.json may override
// the few an operator tunes (see settings.ts); everything else is fixed here.
/** droverd's limits and defaults, each with its unit: HTTP timeouts and retries, check-in intervals, download and drain limits. */
export const limits = {
  // All outbound HTTP (@drover/http, set up in http-clients.ts)
  httpConnectTimeoutMs: 10_000, // ms to open a TCP (and TLS) connection
  httpHeadersTimeoutMs: 30_000, // ms from the request sent to the response headers
  httpBodyTimeoutMs: 30_000, // ms between two chunks of a response body
  httpMaxAttempts: 4, // attempts of one API call (network errors, 408, 429, 5xx)
  httpBackoffBaseMs: 250, // ms: first retry delay, doubled per attempt, full jitter
  httpBackoffMaxMs: 10_000, // ms: longest delay between two attempts
  httpRetryAfterMaxMs: 60_000, // ms: a Retry-After above this is capped
  jsonResponseMaxBytes: 4 * 1024 * 1024, // bytes: an API response body; reading stops past it
  agentRequestTimeoutMs: 5_000, // ms: one call to the agent's health or shutdown route
  agentResponseMaxBytes: 64 * 1024, // bytes: an answer of the agent's health or shutdown route

  // Enrollment and check-ins (manager-link/enroll.ts, manager-link/check-in.ts)
  inventoryTimeoutMs: 5_000, // ms: systeminformation may take this long, then the inventory is sent partial
  checkinDefaultIntervalSeconds: 60, // seconds between check-ins when the manager names none
  checkinJitterRatio: 0.1, // +-10% on every interval, so a fleet does not check in in lockstep
  checkinBackoffBaseMs: 1_000, // ms: first delay after a failed check-in, doubled per failure
  checkinBackoffMaxMs: 300_000, // ms: longest delay while the manager is unreachable
  credentialRotationHours: 24, // hours: the credential's age at which droverd rotates it (decision 0032)
  checkinChannelWaitSeconds: 50, // s: a check-in held for a command at most (decision 0041), under a proxy's 60 s idle timeout
  checkinChannelSlackMs: 15_000, // ms: a held check-in's response timeout beyond its wait
  checkinHeldCutMs: 1_000, // ms: a held check-in lost after this long is a cut connection, not a manager down (no backoff step)
  checkinChannelJitterMs: 500, // ms: at most, between a held check-in's answer and the next (a restarted manager is not stormed)
  credentialRotationRetryMs: 600_000, // ms: the wait after a rotation that failed (0032), at most the rotation period
  metricsTextfileIntervalMs: 5_000, // ms: how often droverd.prom (node_exporter's textfile collector) is refreshed, when it changed
  agentFirstAnswerWaitMs: 30_000, // ms after starting: one extra check-in once the agent answers, or give up
  agentFirstAnswerPollMs: 250, // ms between two probes of a starting agent's health route

  // Journal (update/journal.ts)
  journalMaxSeenCommands: 1_000, // command ids remembered for de-duplication
  journalMaxUsedNonces: 10_000, // nonce ids remembered (expired ones are dropped first)
  journalMaxPendingResults: 64, // results waiting for a check-in (the wire allows 64)
  journalMaxBytes: 16 * 1024 * 1024, // bytes: a larger journal.json is refused as corrupt

  // Downloads (update/download.ts)
  downloadStallTimeoutMs: 30_000, // ms without a byte before a download counts as stalled
  downloadMaxAttempts: 5, // attempts (the first and the resumptions) of one download
  downloadMaxDurationMs: 3_600_000, // ms: a download still running after this is abandoned (slow retrieval)
  downloadWriteChunkBytes: 1024 * 1024, // bytes: largest write to the .part file; two buffers of it per download (update/part-writer.ts)
  downloadSyncEveryBytes: 8 * 1024 * 1024, // bytes written between two background fdatasync(2) of the .part, so the final fsync has little left
  downloadMaxRedirects: 3, // redirects one download request follows (the manager's 307 to an object store's presigned URL)

  // Agent supervision (agent/supervisor.ts)
  restartBackoffBaseMs: 1_000, // ms before restarting an agent that died, doubled per crash
  restartBackoffMaxMs: 60_000, // ms: longest delay between two restarts
  restartStableAfterMs: 60_000, // ms of uptime after which the restart delay resets
  agentStopTimeoutMs: 30_000, // ms an agent has to exit after SIGTERM before SIGKILL
  agentLogLineMaxBytes: 16 * 1024, // bytes: longer agent output lines are cut

  // The update state machine (update/machine.ts, update/deadlines.ts)
  healthPollIntervalMs: 250, // ms: the longest wait between two health probes during a health check
  healthPollFirstMs: 50, // ms between probes of a new agent not listening yet; once it answers unhealthy, doubled per probe up to healthPollIntervalMs
  healthGraceMs: 10_000, // ms the new version must stay healthy before it is committed
  healthTimeoutMs: 60_000, // ms to become healthy at the target version, else roll back
  drainExitMarginMs: 10_000, // ms past the command's drainTimeoutSeconds for the agent to exit after a 200
  deferBackoffBaseMs: 2_000, // ms: first wait after a busy agent's 503 (Retry-After wins when longer)
  deferBackoffMaxMs: 300_000, // ms: longest wait between two drain attempts
  keepReleases: 3, // releases kept per artifact (current and previous always are)
  drainMinFreeBytes: 1024 * 1024, // bytes free in the state dir, else the agent is not stopped (the swap, the journal, a rollback must fit)
  maxResumesPerStep: 3, // restarts of droverd inside starting/health_check before it rolls back instead

  // One daemon per state dir (host/lock.ts)
  lockStaleMs: 10_000, // ms: proper-lockfile's staleness, when the owner file cannot be read
  lockUpdateMs: 2_000, // ms between two refreshes of the lock's mtime

  // Self-update (launcher/boot.ts)
  daemonMaxFailedBoots: 3, // boots of an uncommitted daemon update before the launcher flips back
} as const;

/** Exit codes of the `droverd` CLI: stable, documented in `droverd --help` and docs/install.md. */
export const exitCodes = {
  ok: 0,
  error: 1, // a DaemonError (the code is printed)
  usage: 2, // unknown command or option
  locked: 3, // another droverd holds the state directory
  notEnrolled: 4, // `run`, `status --require-enrolled`: enroll first
  verifyFailed: 5, // `droverd verify` found an installed release that does not verify
  restart: 75, // EX_TEMPFAIL: droverd swapped itself; the service manager starts the new one
} as const;

/** Where droverd looks for its configuration when `--config` is not given. */
export const DEFAULT_CONFIG_PATH = '/etc/drover/droverd.json';
/** The agent's configuration directory: given to the agent, never written by an update. */
export const DEFAULT_AGENT_CONFIG_DIR = '/etc/drover/agent';
/** The env-paths name of droverd's directories outside systemd. */
export const APP_NAME = 'drover';
/** Set by the launcher before it imports current/daemon: self-update is allowed only under it. */
export const LAUNCHER_ENV = 'DROVERD_LAUNCHER';
