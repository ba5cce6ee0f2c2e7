// Argument handling shared by drover's two command lines (`drover` and `droverd`).
//
// node:util's parseArgs refuses a string option's value that starts with a dash as ambiguous. Such
// values are common here: a PEM block (`--manager-key "$(cat manager.key.pub)"`) starts with
// dashes, and one base64url token in 64 does. A string option therefore takes the next argument
// as its value (`--name=<value>`), unless that argument is one of the command's options or reads
// like a long option (`--nmae`, a typo), so a forgotten value still reads as a usage error, not as
// a swallowed option. Nothing after `--` is touched.

/** `--word` or `--word=...`: an option's shape, whether or not the command knows it. */
const LONG_OPTION = /^--[a-z][a-z0-9-]*(=|$)/;

/** The arguments with each string option joined to a dash-leading value. */
export function joinDashValues(args: readonly string[], options: Readonly<Record<string, { type: 'string' | 'boolean'; short?: string }>>): string[] {
  // Every long option of both CLIs has LONG_OPTION's shape, so only `--` and short ones need naming.
  const isOption = (arg: string): boolean =>
    arg === '--' || LONG_OPTION.test(arg) || (arg.length === 2 && Object.values(options).some((spec) => spec.short === arg.slice(1)));
  const out: string[] = [];
  for (let i = 0; i < args.length; i += 1) {
    const arg = args[i] ?? '';
    if (arg === '--') return [...out, ...args.slice(i)];
    const next = args[i + 1];
    const name = arg.startsWith('--') && !arg.includes('=') ? arg.slice(2) : undefined;
    if (name !== undefined && options[name]?.type === 'string' && next !== undefined && next.startsWith('-') && !isOption(next)) {
      out.push(`${arg}=${next}`);
      i += 1;
    } else {
      out.push(arg);
    }
  }
  return out;
}
