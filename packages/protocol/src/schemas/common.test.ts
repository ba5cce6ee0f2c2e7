import { describeWireFamily, long, patch, refuse } from '../../test/wire-examples.js';
import type { Examples } from '../../test/wire-examples.js';
import * as common from './common.js';

const errorBody = { error: { code: 'MACHINE_ID_MISMATCH', message: 'X-Machine-ID differs from the enrolled machine. Re-enroll this host.' } };

const examples: Record<string, Examples> = {
  ErrorBody: {
    valid: [errorBody, patch(errorBody, '/error/retry_after', 5)],
    invalid: [
      refuse('a lower-case code', errorBody, '/error/code', 'machine_id_mismatch'),
      refuse('a message that is not a string', errorBody, '/error/message', { text: 'no' }),
      refuse('a message too long', errorBody, '/error/message', long(65537)),
    ],
  },
};

describeWireFamily(common, examples);
