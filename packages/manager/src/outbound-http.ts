import { Agent, EnvHttpProxyAgent } from 'undici';
import type { Dispatcher } from 'undici';
import { PACKAGE_VERSION } from './version.js';

// The one module through which the manager makes HTTP requests (push mode: agents' shutdown and
// health routes). undici with timeouts on connect, headers and body; proxies from
// HTTPS_PROXY/HTTP_PROXY/NO_PROXY; a User-Agent; a bounded response body. No retries here: the
// rollout engine owns retrying (deferral with backoff), and a shutdown request must never be sent
// twice by a transport that cannot know whether the first one arrived.

export const outboundDefaults = {
  connectTimeoutMs: 5_000, // milliseconds to open a connection
  headersTimeoutMs: 10_000, // milliseconds until the response headers arrive
  bodyTimeoutMs: 10_000, // milliseconds of silence allowed while a body streams
  maxResponseBytes: 64 * 1024, // bytes of a response body the manager reads
} as const;

export const MANAGER_USER_AGENT = `drover-manager/${PACKAGE_VERSION} (node/${process.versions.node})`;

export interface OutboundRequest {
  method: 'GET' | 'POST';
  url: string;
  headers?: Record<string, string>;
  json?: unknown;
}

export interface OutboundResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/** What the manager calls out with; injectable for tests. */
export interface OutboundHttp {
  request(request: OutboundRequest): Promise<OutboundResponse>;
  close(): Promise<void>;
}

/**
 * The default client: undici, proxy-aware, with the timeouts above.
 *
 * @example
 * const http = createOutboundHttp()
 * const res = await http.request({ method: 'GET', url: 'http://10.0.0.5:8080/v1/system/health' })
 */
export function createOutboundHttp(options: { dispatcher?: Dispatcher; env?: Record<string, string | undefined> } = {}): OutboundHttp {
  const env = options.env ?? process.env;
  const timeouts = { connectTimeout: outboundDefaults.connectTimeoutMs, headersTimeout: outboundDefaults.headersTimeoutMs, bodyTimeout: outboundDefaults.bodyTimeoutMs };
  const useProxy = ['HTTPS_PROXY', 'HTTP_PROXY', 'https_proxy', 'http_proxy'].some((name) => (env[name] ?? '') !== '');
  const dispatcher: Dispatcher = options.dispatcher ?? (useProxy ? new EnvHttpProxyAgent(timeouts) : new Agent(timeouts));
  return {
    async request(request) {
      const headers: Record<string, string> = { 'user-agent': MANAGER_USER_AGENT, ...request.headers };
      let body: string | undefined;
      if (request.json !== undefined) {
        body = JSON.stringify(request.json);
        headers['content-type'] = 'application/json';
      }
      const res = await dispatcher.request({
        origin: new URL(request.url).origin,
        path: new URL(request.url).pathname + new URL(request.url).search,
        method: request.method,
        headers,
        ...(body === undefined ? {} : { body }),
        headersTimeout: outboundDefaults.headersTimeoutMs,
        bodyTimeout: outboundDefaults.bodyTimeoutMs,
      });
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        size += chunk.length;
        // endless data: a peer cannot make the manager buffer more than this.
        if (size > outboundDefaults.maxResponseBytes) {
          res.body.destroy();
          break;
        }
        chunks.push(chunk);
      }
      return { status: res.statusCode, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') };
    },
    async close() {
      if (options.dispatcher === undefined) await dispatcher.close();
    },
  };
}
