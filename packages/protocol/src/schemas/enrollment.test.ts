import { describeWireFamily, inventory, keyid, long, machineId, many, publicKey, refuse } from '../../test/wire-examples.js';
import type { Examples } from '../../test/wire-examples.js';
import * as enrollment from './enrollment.js';

const enrollRequest = {
  enrollmentToken: 'enr_Zk3q9vX2LwYp7Tn4Rb8sMd1c',
  machineId,
  hostname: 'edge-fra-07.example.net',
  platform: 'linux-x64',
  arch: 'x64',
  agentVersion: '1.2.2',
  daemonVersion: '0.4.0',
  inventory,
};
const enrollResponse = {
  agentId: 'agent-7f3a',
  credential: 'cred.Zk3q9vX2LwYp7Tn4Rb8sMd1cQe5uHj6k',
  serviceToken: Buffer.alloc(32, 5).toString('base64url'),
  managerKeys: [{ keyid, publicKey }],
  checkinIntervalSeconds: 60,
};

const examples: Record<string, Examples> = {
  Inventory: {
    valid: [inventory, {}, { os: { platform: 'linux' } }],
    invalid: [
      refuse('a negative core count', inventory, '/cpu/cores', -1),
      refuse('an unknown OS field', inventory, '/os/flavor', 'vanilla'),
      refuse('a distro name too long', inventory, '/os/distro', long(257)),
      refuse('too many disks', inventory, '/disks', many(65, { mount: '/' })),
      refuse('a fact name with a space', inventory, '/facts/bad key', 'x'),
      refuse('a fact that is an object', inventory, '/facts/nested', { a: 1 }),
    ],
  },
  EnrollRequest: {
    valid: [enrollRequest],
    invalid: [
      refuse('an uppercase machine id', enrollRequest, '/machineId', machineId.toUpperCase()),
      refuse('a hostname with a space', enrollRequest, '/hostname', 'edge fra 07'),
      refuse('an enrollment token too short', enrollRequest, '/enrollmentToken', 'short'),
      refuse('an agent version too long', enrollRequest, '/agentVersion', long(129)),
      refuse('an unknown inventory field', enrollRequest, '/inventory/gpu', 'none'),
    ],
  },
  EnrollResponse: {
    valid: [enrollResponse],
    invalid: [
      refuse('no manager key', enrollResponse, '/managerKeys', []),
      refuse('a 33-byte public key', enrollResponse, '/managerKeys/0/publicKey', Buffer.alloc(33, 1).toString('base64')),
      refuse('a check-in interval of 1 s', enrollResponse, '/checkinIntervalSeconds', 1),
      refuse('a service token that is not base64url', enrollResponse, '/serviceToken', Buffer.alloc(32, 251).toString('base64')),
    ],
  },
  CredentialResponse: {
    valid: [{ credential: 'cred.Qe5uHj6kZk3q9vX2LwYp7Tn4Rb8sMd1c', issuedAt: '2026-12-06T04:00:00.000Z' }],
    invalid: [
      refuse('a credential too short', { credential: 'cred.Qe5uHj6kZk3q9vX2LwYp7Tn4Rb8sMd1c', issuedAt: '2026-12-06T04:00:00.000Z' }, '/credential', 'short'),
      refuse('a credential with a space', { credential: 'cred.Qe5uHj6kZk3q9vX2LwYp7Tn4Rb8sMd1c', issuedAt: '2026-12-06T04:00:00.000Z' }, '/credential', 'cred Qe5uHj6kZk3q9vX2LwYp7Tn4Rb8sMd1c'),
      refuse('an issue time that is not a time', { credential: 'cred.Qe5uHj6kZk3q9vX2LwYp7Tn4Rb8sMd1c', issuedAt: '2026-12-06T04:00:00.000Z' }, '/issuedAt', 'yesterday'),
    ],
  },
};

describeWireFamily(enrollment, examples);
