import { describe, expect, it } from 'vitest';
import { endpoint, redactUrl } from './url.js';

describe('endpoint', () => {
  it('appends the route to a service served at the root or under a path, with or without a trailing slash', () => {
    expect(endpoint('https://m.example:8443', '/v1/agents/enroll').href).toBe('https://m.example:8443/v1/agents/enroll');
    expect(endpoint('https://m.example:8443/', '/v1/agents/enroll').href).toBe('https://m.example:8443/v1/agents/enroll');
    expect(endpoint('https://ops.example/drover', '/v1/agents/a-1/checkin').href).toBe('https://ops.example/drover/v1/agents/a-1/checkin');
    expect(endpoint('https://ops.example/drover//', '/v1/agents/enroll').href).toBe('https://ops.example/drover/v1/agents/enroll');
    expect(endpoint('https://ops.example/drover?x=1#y', '/v1/agents/enroll').href).toBe('https://ops.example/drover/v1/agents/enroll');
  });
});

describe('redactUrl', () => {
  it('keeps scheme, host and path; drops the query, the fragment and any credentials', () => {
    expect(redactUrl('https://user:pass@m.example:8443/v1/dl/x?sig=SECRET&exp=1#frag')).toBe('https://m.example:8443/v1/dl/x');
    expect(redactUrl('::nope')).toBe('(an unparseable URL)');
  });
});
