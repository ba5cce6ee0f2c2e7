import { parseBearer, tokenId, verifyServiceToken } from '@drover/protocol';
import type { Logger } from './logger.js';
import { errorResponse } from './response.js';
import type { AgentRequest, AgentResponse } from './response.js';

const WWW_AUTHENTICATE = { 'www-authenticate': 'Bearer realm="drover-agent"' };

// Case-insensitive header lookup; a repeated header counts as absent (it is ambiguous).
export function headerValue(headers: AgentRequest['headers'], name: string): string | undefined {
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() !== name) continue;
    return typeof value === 'string' ? value : undefined;
  }
  return undefined;
}

// Checks `Authorization: Bearer service:<token>` against the agent's token; undefined when it
// matches, else the 401 to send.
export function checkServiceToken(
  request: Pick<AgentRequest, 'method' | 'path' | 'headers' | 'remoteAddress'>,
  expected: string,
  logger: Logger,
): AgentResponse | undefined {
  const header = headerValue(request.headers, 'authorization');
  const presented = parseBearer(header);
  // timing: verifyServiceToken hashes both sides and compares in constant time, so a wrong token
  // sharing a long prefix with the right one is refused exactly as fast as one sharing none
  // (bench/token-timing.ts measures it). It runs even when nothing was presented.
  if (verifyServiceToken(presented, expected)) return undefined;

  const where = { method: request.method, path: request.path, remoteAddress: request.remoteAddress };
  if (presented === undefined || presented === '') {
    logger.warn({ event: 'auth_refused', reason: header === undefined ? 'missing' : 'malformed', ...where }, 'Refused a request without a service token');
    return errorResponse('AUTH_REQUIRED', 'This route needs "Authorization: Bearer service:<token>" with the agent\'s service token.', {
      headers: WWW_AUTHENTICATE,
    });
  }
  // secret: the log names the presented token by its id, never by its value.
  logger.warn({ event: 'auth_refused', reason: 'invalid', tokenId: tokenId(presented), ...where }, 'Refused a request with a wrong service token');
  return errorResponse('AUTH_INVALID', 'The service token is not this agent\'s. Check DROVER_SERVICE_TOKEN on both sides.', {
    headers: WWW_AUTHENTICATE,
  });
}
