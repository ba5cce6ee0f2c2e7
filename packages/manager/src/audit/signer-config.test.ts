// A key fetched from a pinned HTTPS URL (AUDIT_SIGNING_KEY_URL + _SHA256), from a real HTTPS server
// on 127.0.0.1:0 whose certificate openssl made for the test; the client trusts it through an
// injected undici Agent, as NODE_EXTRA_CA_CERTS would in a manager.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:https';
import type { Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HttpClient } from '@drover/http';
import { verifyAuditLog, parseAuditSigners } from '@drover/protocol';
import { AuditChain, buildAuditSigners } from '@drover/protocol/internal';
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectRejection } from '../../../../test/helpers/expect-error.js';
import { skipWhenMissing } from '../../../../test/helpers/interop.js';
import { ManagerError } from '../errors.js';
import { auditSignerFromEnv, fetchPinned } from './signer-config.js';

const hasOpenssl = spawnSync('openssl', ['version']).status === 0;
const rsaPem = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
const pin = createHash('sha256').update(rsaPem).digest('hex');

describe.skipIf(skipWhenMissing(!hasOpenssl))('a key from a pinned HTTPS URL', () => {
  let dir = '';
  let server: Server;
  let base = '';
  let http: HttpClient;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'drover-key-url-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'tls.key', '-out', 'tls.pem', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { cwd: dir, stdio: 'pipe' });
    const cert = await readFile(join(dir, 'tls.pem'));
    server = createServer({ key: await readFile(join(dir, 'tls.key')), cert }, (request, response) => {
      if (request.url === '/audit.pem') response.end(rsaPem);
      else {
        response.statusCode = 404;
        response.end();
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    http = new HttpClient({ userAgent: 'drover-test', proxy: false, dispatcher: new Agent({ connect: { ca: cert } }), retry: { maxAttempts: 1 } });
  }, 60_000);

  afterAll(async () => {
    if (dir === '') return;
    await new Promise<void>((resolve) => server.close(() => { resolve(); }));
    await rm(dir, { recursive: true, force: true });
  });

  it('fetches the key whose SHA-256 is the pin, and signs audit records with it (AUDIT_SIGNING_KEY_SOURCE=url)', async () => {
    expect((await fetchPinned(`${base}/audit.pem`, pin, 'audit key', http)).toString()).toBe(rsaPem);
    const opened = await auditSignerFromEnv({ AUDIT_SIGNING_KEY_SOURCE: 'url', AUDIT_SIGNING_ALG: 'rsa-sha256', AUDIT_SIGNER_KID: 'url-rsa', AUDIT_SIGNING_KEY_URL: `${base}/audit.pem`, AUDIT_SIGNING_KEY_URL_SHA256: pin.toUpperCase() }, { http });
    expect(opened?.signer).toMatchObject({ kid: 'url-rsa', algorithm: 'rsa-sha256' });
    if (opened === undefined) return;
    const { line } = await new AuditChain(opened.signer).append({ event: 'manager.started', actor: 'system', outcome: 'success' });
    const signers = parseAuditSigners(buildAuditSigners([{ kid: opened.signer.kid, publicKey: opened.publicKey }]));
    expect(verifyAuditLog(line, signers)).toMatchObject({ ok: true, count: 1 });
  });

  it('refuses a body that does not have the pinned SHA-256 (KEY_URL_PIN_MISMATCH), a 404 (KEY_URL_UNREACHABLE), http:// and no pin (KEY_URL_INSECURE)', async () => {
    await expectRejection(fetchPinned(`${base}/audit.pem`, 'b'.repeat(64), 'audit key', http), ManagerError, 'KEY_URL_PIN_MISMATCH');
    await expectRejection(fetchPinned(`${base}/missing.pem`, pin, 'audit key', http), ManagerError, 'KEY_URL_UNREACHABLE');
    await expectRejection(fetchPinned(`${base.replace('https:', 'http:')}/audit.pem`, pin, 'audit key', http), ManagerError, 'KEY_URL_INSECURE');
    await expectRejection(fetchPinned(`${base}/audit.pem`, undefined, 'audit key', http), ManagerError, 'KEY_URL_INSECURE');
  });

  it('refuses a server the client does not trust (KEY_URL_UNREACHABLE): HTTPS is checked, not just spoken', async () => {
    const untrusting = new HttpClient({ userAgent: 'drover-test', proxy: false, retry: { maxAttempts: 1 } });
    await expectRejection(fetchPinned(`${base}/audit.pem`, pin, 'audit key', untrusting), ManagerError, 'KEY_URL_UNREACHABLE');
  });
});
