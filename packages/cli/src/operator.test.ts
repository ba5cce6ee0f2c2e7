import { describe, expect, it } from 'vitest';
import { connectionFlags } from './operator.js';

describe('connectionFlags', () => {
  it('repeats the --manager and --token-file a command was given, quoted for a shell, so a printed hint works as printed', () => {
    expect(connectionFlags({ manager: 'http://127.0.0.1:8443', 'token-file': '/srv/m/secrets/deploy.token' })).toBe(' --manager http://127.0.0.1:8443 --token-file /srv/m/secrets/deploy.token');
    expect(connectionFlags({ 'token-file': "/tmp/it's here/t" })).toBe(" --token-file '/tmp/it'\\''s here/t'");
  });

  it('adds nothing when both came from the environment, which the next command reads too', () => {
    expect(connectionFlags({})).toBe('');
  });
});
