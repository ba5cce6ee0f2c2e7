import { DownloadParamsSchema, DownloadQuerySchema, ReleaseLatestQuerySchema, ReleaseParamsSchema, wireHeaders } from '@drover/protocol';
import type { ReleaseResponse } from '@drover/protocol';
import type { FastifyPluginAsyncTypebox, TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { managerLimits } from '../../config.js';
import { ManagerError } from '../../errors.js';
import type { ManagerCore } from '../../server/core.js';
import { operatorAccess } from '../operator-auth.js';
import { ListReleasesQuerySchema, PublishReleaseRequestSchema, ReleaseQuerySchema, UploadParamsSchema } from '../operator-schemas.js';
import type { PublishReleaseResponse, ReleaseListItem } from '../operator-schemas.js';
import { compareVersions } from '@drover/protocol';
import { uploadPath } from '../../releases/catalog.js';
import type { ReleaseRecord } from '../../store/records.js';

function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return typeof value === 'string' ? value : undefined;
}

/** Release catalog routes: publish (two steps), look up, download. */
export const releaseRoutes: FastifyPluginAsyncTypebox<{ core: ManagerCore }> = (app, { core }) => {
  const prefix = core.context.settings.routePrefix;
  const { allow, operatorOf } = operatorAccess(core.context);
  const publisher = allow({ role: 'admin', deploy: true });
  const lister = allow({ role: 'viewer', deploy: true });
  // Release metadata is for enrolled agents and operators (any role): either credential opens it.
  const reader = async (request: FastifyRequest): Promise<void> => {
    const authorization = request.headers.authorization;
    try {
      await core.authenticateAgent(authorization);
    } catch (error) {
      if (!(error instanceof ManagerError) || error.code !== 'CREDENTIAL_INVALID') throw error;
      await core.authenticateOperator(authorization, { role: 'viewer', deploy: true }, request.routeOptions.url ?? '');
    }
  };
  const view = (release: ReleaseRecord): ReleaseResponse => ({
    release: release.envelope as unknown as ReleaseResponse['release'],
    manifest: release.manifest as unknown as ReleaseResponse['manifest'],
    url: core.downloadUrl(release),
  });

  // The catalog as operators see it (`drover release list`): newest version first.
  app.get('/v1/releases', { schema: { querystring: ListReleasesQuerySchema }, ...lister }, async (request) => {
    const { artifact, platform, channel, state } = request.query;
    const releases = await core.context.store.listReleases({ artifact, platform, channel, state });
    const byVersion = (a: ReleaseRecord, b: ReleaseRecord): number => {
      try {
        return compareVersions(b.version, a.version) || a.platform.localeCompare(b.platform);
      } catch {
        return b.createdAt.getTime() - a.createdAt.getTime();
      }
    };
    const items: ReleaseListItem[] = [...releases].sort(byVersion).map((r) => ({
      artifact: r.artifact,
      version: r.version,
      platform: r.platform,
      channel: r.channel,
      state: r.state,
      file: r.file,
      signers: ((r.envelope['signatures'] ?? []) as { keyid?: unknown }[]).map((s) => (typeof s.keyid === 'string' ? s.keyid : '?')),
      expiresAt: r.expiresAt.toISOString(),
      publishedAt: r.publishedAt?.toISOString() ?? null,
      publishedBy: r.publishedBy,
    }));
    return { releases: items };
  });

  // Step 1: the envelope, verified against the manager's trust policy.
  app.post(
    '/v1/releases',
    { bodyLimit: managerLimits.releaseBodyMaxBytes, schema: { body: PublishReleaseRequestSchema }, ...publisher },
    async (request, reply) => {
      const { release, created } = await core.registerRelease(request.body.release, operatorOf(request));
      const response: PublishReleaseResponse = {
        status: release.state === 'published' ? 'published' : 'awaiting_upload',
        created,
        uploadUrl: release.state === 'published' ? null : prefix + uploadPath(release),
        manifest: release.manifest as unknown as PublishReleaseResponse['manifest'],
      };
      return reply.code(created ? 201 : 200).send(response);
    },
  );

  // Step 2: the bytes, streamed through the manifest's size and SHA-256 checks.
  app.register((scope, _options, done) => {
    // The body stays a stream: no buffering, no body limit but the signed manifest's size.
    scope.addContentTypeParser('application/octet-stream', (_request, payload, parsed) => {
      parsed(null, payload);
    });
    scope.withTypeProvider<TypeBoxTypeProvider>().put(
      '/v1/releases/:artifact/:version/:platform/artifact',
      { schema: { params: UploadParamsSchema }, ...publisher },
      async (request, reply) => {
        const body = request.body as AsyncIterable<Uint8Array> | undefined;
        if (body === undefined || typeof (body as Partial<AsyncIterable<Uint8Array>>)[Symbol.asyncIterator] !== 'function') {
          throw new ManagerError('UNSUPPORTED_MEDIA_TYPE', 'Upload the artifact as the raw body with Content-Type: application/octet-stream.');
        }
        const release = await core.uploadArtifact(request.params, body, operatorOf(request));
        const response: PublishReleaseResponse = {
          status: 'published',
          created: true,
          uploadUrl: null,
          manifest: release.manifest as unknown as PublishReleaseResponse['manifest'],
        };
        return reply.code(200).send(response);
      },
    );
    done();
  });

  app.get('/v1/releases/latest', { schema: { querystring: ReleaseLatestQuerySchema }, onRequest: reader }, async (request, reply) => {
    const release = await core.latestRelease(request.query);
    return reply.header('cache-control', 'no-cache').send(view(release));
  });

  app.get('/v1/releases/:artifact/:version', { schema: { params: ReleaseParamsSchema, querystring: ReleaseQuerySchema }, onRequest: reader }, async (request, reply) => {
    const release = await core.findRelease({ ...request.params, platform: request.query.platform });
    return reply.header('cache-control', 'no-cache').send(view(release));
  });

  app.get('/v1/download/:artifact/:version/:platform', { schema: { params: DownloadParamsSchema, querystring: DownloadQuerySchema } }, async (request, reply) => {
    let download;
    try {
      download = await core.openDownload({
        ...request.params,
        expires: request.query.expires,
        sig: request.query.sig,
        authorization: request.headers.authorization,
        machineId: header(request, wireHeaders.machineId),
        range: header(request, 'range'),
        ifRange: header(request, 'if-range'),
        ifNoneMatch: header(request, 'if-none-match'),
      });
    } catch (error) {
      if (error instanceof ManagerError && error.code === 'RANGE_NOT_SATISFIABLE') void reply.header('content-range', `bytes */${error.details?.['size'] ?? '*'}`);
      throw error;
    }
    void reply.code(download.status).headers(download.headers);
    return download.body === undefined ? reply.send() : reply.send(download.body);
  });
  return Promise.resolve();
};
