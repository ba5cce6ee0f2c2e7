import { Type } from '@sinclair/typebox';
import { ManagerError } from '../errors.js';

// Single sign-on for people (decision 0042): an OpenID Connect issuer whose ID tokens the operator
// API accepts as bearer tokens, and the groups that map to drover's roles. What manager.json's
// `oidc` holds, what `drover manager init/start --oidc-*` set, and what DROVER_OIDC_* override.

/** The roles a person can hold, lowest first: each includes what the ones before it may do. */
export type PersonRole = 'viewer' | 'operator' | 'admin';
export const personRoles: readonly PersonRole[] = ['viewer', 'operator', 'admin'];

/** An OpenID Connect issuer the operator API trusts for people (ManagerOptions.oidc, manager.json's `oidc`). */
export interface OidcConfig {
  /** The issuer URL, exactly as its tokens' `iss` and its discovery document say it (https; http only on a loopback address). */
  issuer: string;
  /** The client id drover is registered under: the `aud` a token must carry, and the client `drover login` uses. */
  audience: string;
  /** The claim that lists a person's groups (default `groups`). */
  groupsClaim?: string | undefined;
  /** Group name to role, e.g. `{ "drover-admins": "admin" }`; a person with no mapped group is refused. */
  groupRoles: Record<string, PersonRole>;
  /**
   * Where the issuer sends the browser back after the console's sign-in (`…/ui/callback`); default:
   * derived from the request to /ui/login, which cannot know a prefix a reverse proxy strips.
   */
  redirectUri?: string | undefined;
  /** A file holding the console's client secret, for an issuer that registers it as a confidential client (manager.json, relative to its directory). */
  clientSecretFile?: string | undefined;
  /** The client secret itself, read from clientSecretFile or DROVER_OIDC_CLIENT_SECRET: in memory only, never in manager.json or a log. */
  clientSecret?: string | undefined;
}

export const OidcConfigSchema = Type.Object(
  {
    issuer: Type.String({ minLength: 8, maxLength: 2048, description: 'The issuer URL, exactly as its tokens name it (https; http only on a loopback address).' }),
    audience: Type.String({ minLength: 1, maxLength: 256, description: 'The client id: the `aud` a token must carry, and the client `drover login` uses.' }),
    groupsClaim: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'The claim listing the groups (default `groups`).' })),
    groupRoles: Type.Record(Type.String({ minLength: 1, maxLength: 256 }), Type.Union(personRoles.map((role) => Type.Literal(role))), {
      description: 'Group name to role (viewer, operator, admin), e.g. {"drover-admins":"admin"}.',
    }),
    redirectUri: Type.Optional(Type.String({ minLength: 8, maxLength: 2048, description: "The console's sign-in callback as the issuer knows it (https://…/ui/callback); default: derived from the request." })),
    clientSecretFile: Type.Optional(Type.String({ minLength: 1, maxLength: 1024, description: "A file holding the console's client secret (a confidential client); default: a public client with PKCE only." })),
  },
  { additionalProperties: false, description: 'OpenID Connect for people: their ID tokens open the operator API with the role their groups map to.' },
);

const GROUP_ROLES_SYNTAX = 'GROUP=ROLE[,GROUP=ROLE...] with ROLE viewer, operator or admin (e.g. drover-admins=admin,drover-ops=operator)';

/** Parses `drover-admins=admin,drover-ops=operator` (the --oidc-group-roles flag, DROVER_OIDC_GROUP_ROLES). */
export function parseGroupRoles(text: string): Record<string, PersonRole> {
  const roles: Record<string, PersonRole> = {};
  for (const item of text.split(',').map((part) => part.trim()).filter((part) => part !== '')) {
    const at = item.lastIndexOf('=');
    const group = item.slice(0, at).trim();
    const role = item.slice(at + 1).trim();
    if (at <= 0 || group === '' || !(personRoles as readonly string[]).includes(role)) {
      throw new ManagerError('CONFIG_INVALID', `The OIDC group mapping "${item}" is not GROUP=ROLE. Write ${GROUP_ROLES_SYNTAX}.`);
    }
    roles[group] = role as PersonRole;
  }
  if (Object.keys(roles).length === 0) throw new ManagerError('CONFIG_INVALID', `The OIDC group mapping is empty. Write ${GROUP_ROLES_SYNTAX}.`);
  return roles;
}

function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}

/** Whether a URL the issuer hands out may be fetched: https, or http on a loopback address (a test issuer). */
export function isAllowedIssuerUrl(url: URL): boolean {
  return url.protocol === 'https:' || (url.protocol === 'http:' && isLoopback(url.hostname));
}

/** Checks an OIDC configuration: a usable issuer URL, an audience, a non-empty group mapping. Throws CONFIG_INVALID. */
export function checkOidcConfig(config: OidcConfig): OidcConfig {
  let url: URL;
  try {
    url = new URL(config.issuer);
  } catch (error) {
    throw new ManagerError('CONFIG_INVALID', `The OIDC issuer "${config.issuer}" is not a URL; give the issuer's URL, e.g. https://login.example.com/realms/ops.`, { cause: error });
  }
  // spoofing: over plain http anyone on the path could serve their own keys and mint admins.
  if (!isAllowedIssuerUrl(url)) throw new ManagerError('CONFIG_INVALID', `The OIDC issuer ${config.issuer} must be an https URL (http only on a loopback address, for tests).`);
  if (url.search !== '' || url.hash !== '') throw new ManagerError('CONFIG_INVALID', `The OIDC issuer ${config.issuer} must not have a query or a fragment.`);
  if (config.audience.trim() === '') throw new ManagerError('CONFIG_INVALID', 'The OIDC audience (the client id drover is registered under) is empty.');
  if (Object.keys(config.groupRoles).length === 0) throw new ManagerError('CONFIG_INVALID', `The OIDC group mapping is empty: no one could log in. Write ${GROUP_ROLES_SYNTAX}.`);
  if (config.redirectUri !== undefined && !/^https?:\/\/[^/]+\/(.*\/)?ui\/callback$/.test(config.redirectUri)) {
    throw new ManagerError('CONFIG_INVALID', `The OIDC redirect URI ${config.redirectUri} must be the console's callback as the browser reaches it: http(s)://HOST[/PREFIX]/ui/callback.`);
  }
  return { ...config, groupsClaim: config.groupsClaim ?? 'groups' };
}

/** What manager.json may hold of an OIDC configuration: all of it but the client secret, which lives in its own file or the environment. */
export function oidcConfigForFile(config: OidcConfig): Omit<OidcConfig, 'clientSecret'> {
  const rest: OidcConfig = { ...config };
  delete rest.clientSecret;
  return rest;
}

/**
 * manager.json's `oidc`, with DROVER_OIDC_ISSUER, DROVER_OIDC_AUDIENCE, DROVER_OIDC_GROUPS_CLAIM,
 * DROVER_OIDC_GROUP_ROLES and DROVER_OIDC_REDIRECT_URI over it, member by member; undefined when
 * neither names an issuer. The client secret: DROVER_OIDC_CLIENT_SECRET, else the file manager.json's
 * clientSecretFile names (`readSecret` reads it).
 */
export async function resolveOidcConfig(
  config: OidcConfig | undefined,
  env: Record<string, string | undefined>,
  readSecret: (file: string) => Promise<string> = () => Promise.reject(new Error('no secret reader')),
): Promise<OidcConfig | undefined> {
  const pick = (name: string): string | undefined => env[name]?.trim() || undefined;
  const issuer = pick('DROVER_OIDC_ISSUER') ?? config?.issuer;
  const audience = pick('DROVER_OIDC_AUDIENCE') ?? config?.audience;
  const groupsClaim = pick('DROVER_OIDC_GROUPS_CLAIM') ?? config?.groupsClaim;
  const rolesText = pick('DROVER_OIDC_GROUP_ROLES');
  const groupRoles = rolesText === undefined ? config?.groupRoles : parseGroupRoles(rolesText);
  if (issuer === undefined && audience === undefined && rolesText === undefined) return undefined;
  if (issuer === undefined || audience === undefined || groupRoles === undefined) {
    throw new ManagerError('CONFIG_INVALID', 'OIDC needs an issuer, an audience (client id) and a group mapping: set DROVER_OIDC_ISSUER, DROVER_OIDC_AUDIENCE and DROVER_OIDC_GROUP_ROLES (or manager.json\'s oidc).');
  }
  const redirectUri = pick('DROVER_OIDC_REDIRECT_URI') ?? config?.redirectUri;
  const secretFile = config?.clientSecretFile;
  const clientSecret = pick('DROVER_OIDC_CLIENT_SECRET') ?? (secretFile === undefined ? undefined : (await readSecret(secretFile)).trim());
  if (clientSecret === '') throw new ManagerError('CONFIG_INVALID', `The OIDC client secret file ${String(secretFile)} is empty; put the secret in it, or remove clientSecretFile for a public client.`);
  return checkOidcConfig({ issuer, audience, groupsClaim, groupRoles, redirectUri, clientSecret });
}
