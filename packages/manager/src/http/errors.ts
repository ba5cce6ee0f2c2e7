import { DataError, DroverError, schemaProblems } from '@drover/protocol';
import type { ErrorBody } from '@drover/protocol';
import type { TSchema } from '@sinclair/typebox';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest, FastifySchemaCompiler } from 'fastify';
import { ManagerError } from '../errors.js';
import { describeSchemaProblems } from '../presented.js';
import { describeBoundsProblem, requestBoundsProblem } from './request-bounds.js';
import { statusOf } from './status.js';

// Every refusal is DESIGN.md's `{"error":{"code","message"}}`, never Fastify's default shape; a
// client mistake is always a 4xx with a code, and only a fault of the manager is a 5xx. Messages
// are our own: a parser's message can quote the request body (Node's JSON.parse does), and a body
// may hold a token, so those are never echoed.

export interface HttpError {
  status: number;
  code: string;
  message: string;
  details: Record<string, string> | undefined;
}

// Fastify's own 4xx errors, by their code.
const fastifyErrors: Record<string, { status: number; code: string; message: string }> = {
  FST_ERR_CTP_BODY_TOO_LARGE: { status: 413, code: 'BODY_TOO_LARGE', message: 'The request body is larger than this route accepts.' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { status: 415, code: 'UNSUPPORTED_MEDIA_TYPE', message: 'The Content-Type is not one this route accepts: send application/json (or application/octet-stream for artifact uploads).' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { status: 400, code: 'BODY_MALFORMED', message: 'The body length does not match Content-Length.' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { status: 400, code: 'BODY_MALFORMED', message: 'The body is empty; send a JSON object.' },
  FST_ERR_CTP_INVALID_JSON_BODY: { status: 400, code: 'BODY_MALFORMED', message: 'The body is not valid JSON.' },
  FST_ERR_CTP_INSTANCE_ALREADY_EXISTS: { status: 400, code: 'BODY_MALFORMED', message: 'The body could not be read.' },
  // Router errors (answered through Fastify's frameworkErrors hook).
  FST_ERR_BAD_URL: { status: 400, code: 'BAD_REQUEST', message: 'The URL is malformed (an invalid percent-encoding).' },
  FST_ERR_MAX_PARAM_LENGTH: { status: 414, code: 'BAD_REQUEST', message: 'A path segment of the URL is too long for any manager route.' },
  FST_ERR_ASYNC_CONSTRAINT: { status: 400, code: 'BAD_REQUEST', message: 'The request could not be routed.' },
};

/** The status, code and message a thrown error is answered with. */
export function describeHttpError(error: unknown): HttpError {
  if (error instanceof DroverError) {
    const status = statusOf(error.code);
    if (status !== undefined) {
      return { status, code: error.code, message: error.message, details: error instanceof ManagerError ? error.details : undefined };
    }
    return { status: 500, code: 'INTERNAL_ERROR', message: 'The manager failed to handle the request. The failure is logged; please report it.', details: undefined };
  }
  const fastify = error as Partial<FastifyError> | undefined;
  const statusCode = typeof fastify?.statusCode === 'number' ? fastify.statusCode : undefined;
  if (statusCode !== undefined && statusCode >= 400 && statusCode < 500) {
    const known = typeof fastify?.code === 'string' ? fastifyErrors[fastify.code] : undefined;
    if (known !== undefined && Object.hasOwn(fastifyErrors, fastify?.code ?? '')) return { ...known, details: undefined };
    // A JSON syntax error from the body parser (statusCode 400, a SyntaxError).
    if (error instanceof SyntaxError) return { status: 400, code: 'BODY_MALFORMED', message: 'The body is not valid JSON.', details: undefined };
    return { status: statusCode, code: 'BAD_REQUEST', message: 'The request is malformed.', details: undefined };
  }
  return { status: 500, code: 'INTERNAL_ERROR', message: 'The manager failed to handle the request. The failure is logged; please report it.', details: undefined };
}

export function errorBody(code: string, message: string, details?: Record<string, string>): ErrorBody {
  return { error: { code, message, ...details } };
}

/** Sends a refusal in the error body shape, logging 5xx as errors and 4xx as info. */
export function sendError(request: FastifyRequest, reply: FastifyReply, error: unknown): FastifyReply {
  const described = describeHttpError(error);
  if (described.status >= 500) request.log.error({ err: error, code: described.code }, 'request failed');
  else request.log.info({ code: described.code, status: described.status }, 'request refused');
  // An unread body (too large, refused upload) is not worth draining: close the connection.
  if (described.status === 413 || described.code === 'ARTIFACT_TOO_LARGE') void reply.header('connection', 'close');
  return reply.code(described.status).type('application/json; charset=utf-8').send(errorBody(described.code, described.message, described.details));
}

/**
 * Validates request parts: first the bounds every part is held to (http/request-bounds.ts), then
 * the part's TypeBox schema through protocol's checker (unknown fields are refused, never
 * stripped). Either refusal comes before any hook or handler that changes something, and neither
 * message quotes the request.
 */
export const typeboxValidatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  const part = httpPart === 'querystring' ? 'query string' : httpPart === 'params' ? 'path' : (httpPart ?? 'request');
  const properties = (schema as { properties?: unknown }).properties;
  const fields = new Set(typeof properties === 'object' && properties !== null ? Object.keys(properties) : []);
  return (data: unknown) => {
    const bounds = requestBoundsProblem(data, fields);
    if (bounds !== undefined) return { error: new ManagerError(bounds.code, describeBoundsProblem(bounds, part)) };
    const problems = schemaProblems(schema, data, 3);
    if (problems.length === 0) return { value: data };
    return { error: new DataError('SCHEMA_INVALID', `The request ${part} does not match its schema (${describeSchemaProblems(schema, problems)}). Fix the field named.`) };
  };
};

/** Fastify's `frameworkErrors` option: router failures (a bad URL) in the manager's error shape. */
export function frameworkErrors(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  void sendError(request, reply, error);
}

/** Installs the validator, the error handler and the not-found handler on an (encapsulated) instance. */
export function installErrorHandling(app: FastifyInstance): void {
  app.setValidatorCompiler(typeboxValidatorCompiler);
  // Only JSON (and, on the upload route, raw bytes) is accepted: anything else is 415, not a string body.
  if (app.hasContentTypeParser('text/plain')) app.removeContentTypeParser('text/plain');
  app.setErrorHandler((error, request, reply) => sendError(request, reply, error));
  // The path is not echoed: it is whatever the client sent (a token pasted into a URL included).
  app.setNotFoundHandler((request, reply) => sendError(request, reply, new ManagerError('NOT_FOUND', `No ${request.method} route has the given path. See DESIGN.md for the manager's routes.`)));
}
