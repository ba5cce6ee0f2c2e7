// URLs as callers build them, and as error messages and logs may show them.

/**
 * The URL of `route` on a service that may be mounted under a path (`https://ops.example/drover`):
 * the route is appended to that path, where `new URL('/v1/...', base)` would drop it. The base's
 * query and fragment are dropped.
 *
 * @example
 * ```ts
 * endpoint('https://ops.example/drover/', '/v1/agents/enroll').href // 'https://ops.example/drover/v1/agents/enroll'
 * ```
 */
export function endpoint(base: string | URL, route: string): URL {
  const url = new URL(base);
  url.pathname = `${url.pathname.replace(/\/+$/, '')}${route}`;
  url.search = '';
  url.hash = '';
  return url;
}

/**
 * A URL as an error message or a log line may show it: scheme, host and path. The query (a
 * presigned download's signature), the fragment and any user:password are left out.
 */
export function redactUrl(url: string | URL): string {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}${parsed.pathname}`;
  } catch {
    return '(an unparseable URL)';
  }
}
