import type { CommandIo, OptionSpec, OptionValues } from './cli.js';
import { optionalString } from './cli.js';
import { CliError } from './errors.js';
import { readInput } from './fs-atomic.js';
import { createCliHttp, ManagerClient } from './manager-client.js';
import { cachedIdToken } from './oidc/login-session.js';
import { loginDirectory } from './oidc/token-cache.js';

// What every command that talks to a manager takes: --manager URL (or DROVER_MANAGER_URL) and an
// operator token from --token-file or DROVER_ADMIN_TOKEN (never from the command line, where it
// would land in shell history and `ps`), else the person's login from `drover login`.

/** Which tokens a command accepts, in the order it looks for them in the environment. */
export type TokenScope = 'admin' | 'admin-or-deploy' | 'deploy-or-admin';

const tokenVariables: Record<TokenScope, readonly string[]> = {
  admin: ['DROVER_ADMIN_TOKEN'],
  'admin-or-deploy': ['DROVER_ADMIN_TOKEN', 'DROVER_DEPLOY_TOKEN'],
  'deploy-or-admin': ['DROVER_DEPLOY_TOKEN', 'DROVER_ADMIN_TOKEN'],
};

const tokenNames: Record<TokenScope, string> = { admin: 'admin token', 'admin-or-deploy': 'admin or deploy token', 'deploy-or-admin': 'deploy or admin token' };

/** --manager and --token-file, with help that names the token this command takes. */
export function operatorOptions(scope: TokenScope = 'admin'): Record<string, OptionSpec> {
  const variables = tokenVariables[scope].map((name) => `$${name}`).join(', else ');
  return {
    manager: { type: 'string', arg: 'URL', help: 'The manager, e.g. https://manager.example:8443 (default: $DROVER_MANAGER_URL).' },
    'token-file': { type: 'string', arg: 'FILE', help: `A file holding the ${tokenNames[scope]} (default: ${variables}, else your \`drover login\`).` },
  };
}

/** A client for the manager named by --manager, authenticated with the operator token or, failing one, the cached login (refreshed if it is about to expire). */
export async function operatorClient(values: OptionValues, io: CommandIo, scope: TokenScope = 'admin'): Promise<ManagerClient> {
  const manager = optionalString(values, 'manager') ?? io.env['DROVER_MANAGER_URL'];
  if (manager === undefined || manager === '') throw new CliError('USAGE_ERROR', '--manager is required (or set DROVER_MANAGER_URL).');
  const tokenFile = optionalString(values, 'token-file');
  let token: string | undefined;
  if (tokenFile !== undefined) {
    token = (await readInput(tokenFile, 'Token file')).toString('utf8').split('\n').map((line) => line.trim()).find((line) => line !== '');
  } else {
    token = tokenVariables[scope].map((name) => io.env[name]).find((value) => value !== undefined && value !== '');
  }
  const http = createCliHttp();
  // An empty --token-file is a mistake to report, not a reason to fall back on the login.
  if (token === undefined && tokenFile === undefined) token = await cachedIdToken({ directory: loginDirectory(), managerUrl: manager, http });
  if (token === undefined) {
    const variables = tokenVariables[scope].join(' or ');
    throw new CliError('TOKEN_MISSING', `No operator token: set ${variables}, pass --token-file (e.g. <manager dir>/secrets/admin.token), or log in with \`drover login --manager ${manager}\`.`);
  }
  return new ManagerClient({ baseUrl: manager, token, http });
}

/**
 * The --manager and --token-file flags this command was given, to repeat in a hint that names
 * another command (so the hint works as printed); empty when they came from the environment, which
 * the next command reads too. The token itself never appears: only the file's name.
 */
export function connectionFlags(values: OptionValues): string {
  const flags: string[] = [];
  for (const name of ['manager', 'token-file']) {
    const value = optionalString(values, name);
    if (value !== undefined) flags.push(`--${name} ${shellQuote(value)}`);
  }
  return flags.length === 0 ? '' : ` ${flags.join(' ')}`;
}

function shellQuote(value: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(value) ? value : `'${value.replaceAll("'", "'\\''")}'`;
}
