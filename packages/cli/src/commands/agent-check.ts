import type { Command, OptionValues } from '../cli.js';
import { exitCodes, flag, optionalString, requireString } from '../cli.js';
import { AgentCheck } from '../agent-check/rules.js';
import { CliError } from '../errors.js';
import { readInput } from '../fs-atomic.js';

// `drover agent-check URL --token-file F` (issue 15): a conformance check anyone can run against
// their own agent, whatever it is written in. docs/agent-sdk.md "Checking an agent" explains each rule.

function wholeNumber(values: OptionValues, name: string, fallback: number, min: number, max: number): number {
  const text = optionalString(values, name);
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < min || value > max) throw new CliError('USAGE_ERROR', `--${name} takes a whole number from ${min} to ${max}; got "${text}".`);
  return value;
}

export const agentCheckCommand: Command = {
  usage: 'URL --token-file FILE [--samples N] [--busy-command CMD] [--drain-seconds S] [--keep-running]',
  description: [
    "Checks an agent against drover's rules over HTTP and prints one line per rule: PASS, FAIL or SKIP, the rule and why.",
    'Exit 0 when no rule fails, 1 when one does.',
    '',
    '  health-version  GET /v1/system/health answers 200 with a version (drover\'s form or the CIRIS agent\'s).',
    '  auth-missing    POST /v1/system/shutdown without Authorization is refused 401.',
    '  auth-malformed  Basic credentials, a bare Bearer, an empty service token, another scheme: each refused 401.',
    '  auth-wrong      Wrong tokens (last character changed, random, one character longer): each refused 401.',
    '  auth-timing     dudect\'s test over HTTP: wrong tokens sharing a long prefix with the right one are refused',
    '                  no slower than tokens sharing nothing (|t| < 4.5 over --samples requests, within --timing-seconds).',
    '  busy-503        With the agent made busy by --busy-command, a shutdown is refused 503 with Retry-After',
    '                  (SKIP without --busy-command).',
    '  shutdown-200    The shutdown with the right token answers 200 (a busy agent is asked again when it says).',
    '  shutdown-exits  After that 200, the agent stops answering (or its health fails) within --drain-seconds.',
    '',
    'The check stops the agent (the last two rules) unless --keep-running is given; a wrong-token rule that fails may',
    'stop it too. Run it against an agent nobody depends on, with no supervisor restarting it during the check.',
    '--busy-command runs with /bin/sh and DROVER_AGENT_URL and DROVER_SERVICE_TOKEN in its environment; it must',
    'leave the agent busy for longer than the check takes to ask (a few seconds), e.g. for the example agent:',
    '  --busy-command \'curl -fsS -X POST -H "Authorization: Bearer service:$DROVER_SERVICE_TOKEN" "${DROVER_AGENT_URL%/}/work?ms=5000"\'',
  ].join('\n'),
  options: {
    'token-file': { type: 'string', arg: 'FILE', help: "A file holding the agent's service token (the first non-empty line)." },
    samples: { type: 'string', arg: 'N', help: 'Timed wrong-token requests for auth-timing, 20-1000000 (default 2000).' },
    'timing-seconds': { type: 'string', arg: 'S', help: 'Seconds auth-timing may take at most; it decides on the samples it has by then (default 20).' },
    'busy-command': { type: 'string', arg: 'CMD', help: 'A shell command that makes the agent busy, to check busy-503 (default: busy-503 is skipped).' },
    'drain-seconds': { type: 'string', arg: 'S', help: "The agent's drain time: seconds it may take to end after an accepted shutdown (default 30)." },
    'busy-wait-seconds': { type: 'string', arg: 'S', help: 'Seconds to keep asking a busy agent to shut down before shutdown-200 fails (default 60).' },
    'keep-running': { type: 'boolean', help: 'Skip the shutdown rules: the agent keeps running.' },
  },
  arguments: ['<URL>'],
  async run({ values, positionals, io }) {
    const [text = ''] = positionals;
    let url: URL;
    try {
      url = new URL(text);
    } catch (error) {
      throw new CliError('USAGE_ERROR', `URL must be the agent's base URL, e.g. http://127.0.0.1:8080; got "${text}".`, { cause: error });
    }
    if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.username !== '' || url.password !== '') {
      throw new CliError('USAGE_ERROR', `URL must be an http(s) URL without credentials, e.g. http://127.0.0.1:8080; got "${text}".`);
    }
    const tokenFile = requireString(values, 'token-file');
    const serviceToken = (await readInput(tokenFile, 'Token file')).toString('utf8').split('\n').map((line) => line.trim()).find((line) => line !== '');
    if (serviceToken === undefined) throw new CliError('TOKEN_MISSING', `${tokenFile} holds no token. Put the agent's service token on its first line.`);
    const check = new AgentCheck({
      url,
      serviceToken,
      samples: wholeNumber(values, 'samples', 2000, 20, 1_000_000),
      timingSeconds: wholeNumber(values, 'timing-seconds', 20, 1, 3600),
      busyCommand: optionalString(values, 'busy-command'),
      drainSeconds: wholeNumber(values, 'drain-seconds', 30, 1, 86_400),
      busyWaitSeconds: wholeNumber(values, 'busy-wait-seconds', 60, 0, 86_400),
      keepRunning: flag(values, 'keep-running'),
      env: io.env,
    });
    const rules = await check.run();
    const failed = rules.filter((r) => r.verdict === 'FAIL');
    const width = Math.max(...rules.map((r) => r.rule.length));
    const lines = rules.map((r) => `${r.verdict.padEnd(4)} ${r.rule.padEnd(width)}  ${r.why}`);
    lines.push(failed.length === 0 ? `${url.origin}: no rule failed (${rules.filter((r) => r.verdict === 'SKIP').length} skipped)` : `${url.origin}: ${failed.length} rule(s) failed: ${failed.map((r) => r.rule).join(', ')}`);
    return { data: { url: url.href, pass: failed.length === 0, rules }, text: lines.join('\n'), exitCode: failed.length === 0 ? exitCodes.ok : exitCodes.error };
  },
};
