import { describe, expect, it } from 'vitest';
import { oidcConfigForFile, resolveOidcConfig } from './oidc-config.js';

const base = { issuer: 'https://login.example.com/realms/ops', audience: 'drover', groupRoles: { ops: 'operator' as const } };

describe('resolveOidcConfig: the console sign-in members', () => {
  it('reads the client secret from DROVER_OIDC_CLIENT_SECRET before the file manager.json names', async () => {
    const read = (file: string): Promise<string> => Promise.resolve(file === 'secrets/oidc.secret' ? 'from-file\n' : '');
    await expect(resolveOidcConfig({ ...base, clientSecretFile: 'secrets/oidc.secret' }, {}, read)).resolves.toMatchObject({ clientSecret: 'from-file' });
    await expect(resolveOidcConfig({ ...base, clientSecretFile: 'secrets/oidc.secret' }, { DROVER_OIDC_CLIENT_SECRET: 'from-env' }, read)).resolves.toMatchObject({ clientSecret: 'from-env' });
    await expect(resolveOidcConfig(base, {}, read)).resolves.toMatchObject({ clientSecret: undefined });
    await expect(resolveOidcConfig({ ...base, clientSecretFile: 'empty' }, {}, read)).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
  });

  it('takes a redirect URI that ends in /ui/callback, under any prefix, and refuses another', async () => {
    await expect(resolveOidcConfig(base, { DROVER_OIDC_REDIRECT_URI: 'https://ops.example.com/drover/ui/callback' })).resolves.toMatchObject({ redirectUri: 'https://ops.example.com/drover/ui/callback' });
    await expect(resolveOidcConfig({ ...base, redirectUri: 'https://ops.example.com/ui/callback' }, {})).resolves.toMatchObject({ redirectUri: 'https://ops.example.com/ui/callback' });
    await expect(resolveOidcConfig({ ...base, redirectUri: 'https://ops.example.com/callback' }, {})).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
  });

  it('keeps the client secret out of what manager.json holds', () => {
    expect(oidcConfigForFile({ ...base, clientSecret: 's3cret', clientSecretFile: 'secrets/oidc.secret' })).toEqual({ ...base, clientSecretFile: 'secrets/oidc.secret' });
  });
});
