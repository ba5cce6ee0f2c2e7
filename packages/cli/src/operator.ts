import type { CommandIo, OptionSpec, OptionValues } from './cli.js';
import { optionalString } from './cli.js';
import { CliError } from './errors.js';
import { readInput } from './fs-atomic.js';
import { HttpClient } from './http.js';

// What every command that talks to a manager takes: --manager URL (or DROVER_MANAGER_URL) and an
// operator token from DROVER_ADMIN_TOKEN or --token-file (never from the command line, where it
// would land in shell history and `ps`).

export const operatorOptions: Record<string, OptionSpec> = {
  manager: { type: 'string', arg: 'URL', help: 'The manager, e.g. https://manager.example:8443 (default: $DROVER_MANAGER_URL).' },
  'token-file': { type: 'string', arg: 'FILE', help: 'A file holding the admin token (default: $DROVER_ADMIN_TOKEN).' },
};

/** A client for the manager named by --manager, authenticated with the operator token. */
export async function operatorClient(values: OptionValues, io: CommandIo, options: { tokenVariables?: readonly string[] } = {}): Promise<HttpClient> {
  const manager = optionalString(values, 'manager') ?? io.env['DROVER_MANAGER_URL'];
  if (manager === undefined || manager === '') throw new CliError('USAGE_ERROR', '--manager is required (or set DROVER_MANAGER_URL).');
  const tokenFile = optionalString(values, 'token-file');
  let token: string | undefined;
  if (tokenFile !== undefined) {
    token = (await readInput(tokenFile, 'Token file')).toString('utf8').split('\n').map((line) => line.trim()).find((line) => line !== '');
  } else {
    const variables = options.tokenVariables ?? ['DROVER_ADMIN_TOKEN'];
    token = variables.map((name) => io.env[name]).find((value) => value !== undefined && value !== '');
  }
  if (token === undefined || token === '') {
    const variables = (options.tokenVariables ?? ['DROVER_ADMIN_TOKEN']).join(' or ');
    throw new CliError('TOKEN_MISSING', `No operator token: set ${variables}, or pass --token-file (e.g. <manager dir>/secrets/admin.token).`);
  }
  return new HttpClient({ baseUrl: manager, token });
}
