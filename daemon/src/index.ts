// droverd's library entry. droverd is a program: its CLI (bin.ts, `droverd --help`) is the product,
// and its tests import the modules they exercise by path. What a provisioning or monitoring tool
// needs beside the CLI is here: the settings file's parser (to check a droverd.json before it is
// shipped to a host), the error codes and exit codes droverd reports, and its version.
// docs/decisions/0018-public-api-surface.md.
export { DaemonError, daemonErrorCodes } from './errors.js';
export type { DaemonErrorCode } from './errors.js';
export { exitCodes, DEFAULT_CONFIG_PATH } from './config.js';
export { parseSettings, loadSettings } from './settings.js';
export type { Settings, ManagerSettings, AgentSettings } from './settings.js';
export type { LogLevel } from './logger.js';
export { DAEMON_VERSION } from './version.js';
