import { commandResults, describeWireFamily, long, machineId, noncePayload, presignedUrl, refuse, updateCommand } from '../../test/wire-examples.js';
import type { Examples } from '../../test/wire-examples.js';
import * as commands from './commands.js';

const examples: Record<string, Examples> = {
  NoncePayload: {
    valid: [noncePayload],
    invalid: [
      refuse('another version', noncePayload, '/v', 2),
      refuse('an uppercase machine id', noncePayload, '/machineId', machineId.toUpperCase()),
    ],
  },
  CommandResult: {
    valid: commandResults,
    invalid: [
      refuse('an unknown outcome', commandResults[0], '/outcome', 'done'),
      refuse('a code with spaces', commandResults[1], '/detail/code', 'BAD CODE'),
      refuse('an unknown detail field', commandResults[1], '/detail/stack', 'at x (y.js:1)'),
      refuse('a detail message too long', commandResults[1], '/detail/message', long(4097)),
    ],
  },
  UpdateCommand: {
    valid: [updateCommand, { ...updateCommand, artifact: 'daemon', url: presignedUrl, force: true }],
    invalid: [
      refuse('another type', updateCommand, '/type', 'restart'),
      refuse('an unknown artifact', updateCommand, '/artifact', 'gui'),
      refuse('an ftp URL', updateCommand, '/url', 'ftp://mirror.example.net/agent.tar.gz'),
      refuse('a protocol-relative URL', updateCommand, '/url', '//evil.example.net/agent.tar.gz'),
      refuse('a negative drain timeout', updateCommand, '/drainTimeoutSeconds', -1),
      refuse('a deadline that is not a date', updateCommand, '/deadline', 'tomorrow'),
      refuse('an unsigned release', updateCommand, '/release/signatures', []),
    ],
  },
  Command: {
    valid: [updateCommand],
    invalid: [refuse('a type no daemon knows', updateCommand, '/type', 'reboot')],
  },
};

describeWireFamily(commands, examples);

