import { describeWireFamily, envelope, hex64, keyid, long, presignedUrl, publicKey, refuse, releasePayload } from '../../test/wire-examples.js';
import type { Examples } from '../../test/wire-examples.js';
import * as releases from './releases.js';

const releaseResponse = { release: envelope, manifest: releasePayload, url: presignedUrl };

const examples: Record<string, Examples> = {
  DsseEnvelope: {
    valid: [
      envelope,
      // DSSE allows the URL-safe alphabet and signatures without a key id (decision 0034).
      { ...envelope, payload: 'eyJhIjoxfQ', signatures: [{ sig: 'AAAA-_8=' }] },
    ],
    invalid: [
      refuse('no signature', envelope, '/signatures', []),
      refuse('a signature with a field DSSE does not have', envelope, '/signatures/0/extra', 1),
      refuse('a payload that is not base64', envelope, '/payload', '{"not":"base64"}'),
    ],
  },
  ReleasePayload: {
    valid: [releasePayload],
    invalid: [
      refuse('another schema version', releasePayload, '/schema', 'drover.release/v2'),
      refuse('a negative size', releasePayload, '/file/size', -1),
      refuse('a file name with a path', releasePayload, '/file/name', '../agent.tar.gz'),
    ],
  },
  TrustPolicy: {
    valid: [{ threshold: 1, keys: [{ keyid, publicKey }] }],
    invalid: [refuse('a zero threshold', { threshold: 1, keys: [{ keyid, publicKey }] }, '/threshold', 0)],
  },
  ReleaseLatestQuery: {
    valid: [{ artifact: 'agent', platform: 'linux-x64' }, { artifact: 'daemon', channel: 'beta', platform: 'linux-arm64' }],
    invalid: [
      refuse('an empty channel', { artifact: 'agent', platform: 'linux-x64' }, '/channel', ''),
      refuse('an uppercase artifact', { artifact: 'agent', platform: 'linux-x64' }, '/artifact', 'Agent'),
      refuse('a platform too long', { artifact: 'agent', platform: 'linux-x64' }, '/platform', long(65)),
    ],
  },
  ReleaseParams: {
    valid: [{ artifact: 'agent', version: '1.2.3' }, { artifact: 'agent', version: 'v1.2.3-rc.1+build.5' }, { artifact: 'agent', version: 'a1b2c3d' }],
    invalid: [
      refuse('an encoded path traversal', { artifact: 'agent', version: '1' }, '/version', '..%2F..%2Fetc'),
      refuse('a hidden file name', { artifact: 'agent', version: '1' }, '/version', '.hidden'),
    ],
  },
  ReleaseResponse: {
    valid: [releaseResponse, { ...releaseResponse, url: '/v1/download/agent/1.2.3/linux-x64' }],
    invalid: [
      refuse('a javascript: URL', releaseResponse, '/url', 'javascript:alert(1)'),
      refuse('a manifest of another schema', releaseResponse, '/manifest/schema', 'drover.release/v0'),
      refuse('a release that is not an envelope', releaseResponse, '/release/payload', 42),
    ],
  },
  DownloadParams: {
    valid: [{ artifact: 'agent', version: '1.2.3', platform: 'linux-x64' }],
    invalid: [refuse('a platform with a slash', { artifact: 'agent', version: '1.2.3', platform: 'linux-x64' }, '/platform', 'linux/x64')],
  },
  DownloadQuery: {
    valid: [{}, { expires: '1795000000', sig: hex64('sig') }],
    invalid: [
      refuse('expires that is not a number', { expires: '1', sig: hex64('sig') }, '/expires', 'soon'),
      refuse('an uppercase signature', { expires: '1', sig: hex64('sig') }, '/sig', hex64('sig').toUpperCase()),
    ],
  },
};

describeWireFamily(releases, examples);
