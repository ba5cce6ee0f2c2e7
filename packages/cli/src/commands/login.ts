import type { Command, CommandIo, OptionValues } from '../cli.js';
import { optionalString } from '../cli.js';
import { CliError } from '../errors.js';
import { createCliHttp, ManagerClient, printable } from '../manager-client.js';
import { discoverIssuer, pollDeviceToken, revokeRefreshToken, startDeviceAuthorization } from '../oidc/device-flow.js';
import { loginOf } from '../oidc/login-session.js';
import { jwtClaims, loginDirectory, loginPath, normalizeManagerUrl, readLogin, removeLogin, writeLogin } from '../oidc/token-cache.js';

// `drover login` and `drover logout`: a person's single sign-on for the operator commands, through
// the OIDC issuer the manager names (GET /manager/v1/auth/config) and the device authorization
// grant (RFC 8628), so it works over SSH and on hosts without a browser.

const managerOption = { manager: { type: 'string', arg: 'URL', help: 'The manager, e.g. https://manager.example:8443 (default: $DROVER_MANAGER_URL).' } } as const;

function managerUrlOf(values: OptionValues, io: CommandIo): string {
  const manager = optionalString(values, 'manager') ?? io.env['DROVER_MANAGER_URL'];
  if (manager === undefined || manager === '') throw new CliError('USAGE_ERROR', '--manager is required (or set DROVER_MANAGER_URL).');
  return normalizeManagerUrl(manager);
}

interface AuthConfig {
  issuer: string;
  clientId: string;
}

/** The manager's OIDC issuer and client id, or LOGIN_UNAVAILABLE when it has no single sign-on. */
async function authConfig(managerUrl: string, http: ReturnType<typeof createCliHttp>): Promise<AuthConfig> {
  const answer = (await new ManagerClient({ baseUrl: managerUrl, http }).json({ method: 'GET', path: '/manager/v1/auth/config' })) as { oidc?: { issuer?: unknown; clientId?: unknown } | null } | undefined;
  const oidc = answer?.oidc;
  if (oidc === undefined || oidc === null) {
    throw new CliError('LOGIN_UNAVAILABLE', `The manager at ${managerUrl} has no single sign-on configured (manager.json's oidc, or \`drover manager start --oidc-issuer\`). Use an operator token (--token-file) instead.`);
  }
  if (typeof oidc.issuer !== 'string' || typeof oidc.clientId !== 'string') throw new CliError('HTTP_ERROR', `The manager at ${managerUrl} answered /manager/v1/auth/config without an issuer and a client id. Check that --manager points at a drover manager.`);
  return { issuer: oidc.issuer, clientId: oidc.clientId };
}

/** Who logged in (the `sub` claim), to print: never the token. */
function subjectOf(idToken: string): string | undefined {
  const sub = jwtClaims(idToken)?.['sub'];
  return typeof sub === 'string' ? printable(sub).slice(0, 256) : undefined;
}

export const loginCommand: Command = {
  usage: '--manager URL',
  description:
    'Logs you in to a manager with single sign-on: asks the manager for its OpenID Connect issuer and client id,\n' +
    'then prints a URL and a code to enter there (in any browser, on any device) and waits until you approve it.\n' +
    'The ID token and refresh token are kept in your config directory (on Linux ~/.config/drover/logins, one\n' +
    'file per manager, mode 0600) and never printed. Operator commands given no --token-file and no token\n' +
    'variable use the login, refreshing it when it expires; what they may do is the role your groups map to\n' +
    'on the manager (viewer, operator or admin). `drover logout` removes it.',
  options: managerOption,
  async run({ values, io }) {
    const managerUrl = managerUrlOf(values, io);
    const http = createCliHttp();
    const { issuer, clientId } = await authConfig(managerUrl, http);
    const metadata = await discoverIssuer(http, issuer);
    const authorization = await startDeviceAuthorization(http, metadata, clientId);
    // Instructions go to stderr: stdout stays the result (and clean JSON with --json).
    io.stderr(
      [
        `To log in to ${managerUrl}, open ${authorization.verificationUri}`,
        `and enter the code ${authorization.userCode}`,
        ...(authorization.verificationUriComplete === undefined ? [] : [`(or open ${authorization.verificationUriComplete})`]),
        `Waiting for approval (the code expires in ${Math.round(authorization.expiresInSeconds / 60)} min)...`,
        '',
      ].join('\n'),
    );
    const tokens = await pollDeviceToken(http, metadata, clientId, authorization);
    const login = loginOf(tokens, { managerUrl, issuer, clientId, nowMs: Date.now() });
    const directory = loginDirectory();
    const file = await writeLogin(directory, login);
    const subject = subjectOf(login.idToken);
    return {
      data: { manager: managerUrl, issuer, clientId, subject: subject ?? null, expiresAt: login.expiresAt, refreshable: login.refreshToken !== undefined, file },
      text: `Logged in to ${managerUrl}${subject === undefined ? '' : ` as ${subject}`} (ID token until ${login.expiresAt}${login.refreshToken === undefined ? '; no refresh token: log in again then' : ', refreshed as needed'}).\nThe login is kept in ${file}.`,
    };
  },
};

export const logoutCommand: Command = {
  usage: '--manager URL',
  description:
    'Removes the login `drover login` kept for a manager, after revoking its refresh token at the issuer (RFC 7009)\n' +
    'where the issuer offers revocation; the ID token itself stays valid until it expires.',
  options: managerOption,
  async run({ values, io }) {
    const managerUrl = managerUrlOf(values, io);
    const directory = loginDirectory();
    const login = await readLogin(directory, managerUrl);
    let revoked = false;
    if (login?.refreshToken !== undefined) {
      try {
        revoked = await revokeRefreshToken(createCliHttp(), await discoverIssuer(createCliHttp(), login.issuer), login.clientId, login.refreshToken);
      } catch {
        // Best effort: an unreachable issuer must not keep the login on disk.
        revoked = false;
      }
    }
    const file = loginPath(directory, managerUrl);
    const removed = await removeLogin(directory, managerUrl);
    const revocation = login?.refreshToken === undefined ? '' : revoked ? '; its refresh token is revoked at the issuer' : '; the issuer did not revoke its refresh token, which stays valid until it expires';
    return { data: { manager: managerUrl, removed, revoked, file }, text: removed ? `Logged out of ${managerUrl} (removed ${file}${revocation}).` : `No login for ${managerUrl}; nothing to remove.` };
  },
};
