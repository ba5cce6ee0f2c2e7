import { LAUNCHER_ENV } from '../config.js';
import { Daemon } from '../daemon.js';
import { createDaemonLogger } from '../logger.js';
import { failpointsFromEnv } from '../update/failpoints.js';
import { loadContext } from './context.js';
import type { CliCommand } from './framework.js';


export const runCommand: CliCommand = {
  name: 'run',
  summary: 'Run the daemon: supervise the agent, check in, carry out updates. Stops cleanly on SIGTERM.',
  usage: '[--config FILE] [--state-dir DIR]',
  description: 'Logs JSON lines on stdout (journald under systemd). Enrolls first when droverd.json has manager.url and manager.enrollmentToken and the host is not enrolled, trying again with backoff while the manager cannot be reached or is overloaded.',
  options: {},
  async run(input) {
    const { settings, paths } = await loadContext(input);
    const logger = createDaemonLogger({
      level: settings.logLevel,
      destination: {
        write: (line: string) => {
          input.io.stdout(line);
        },
      },
    });
    const daemon = await Daemon.start({ paths, settings, logger, underLauncher: input.io.env[LAUNCHER_ENV] === '1', failpoints: failpointsFromEnv(input.io.env) });
    const onSignal = (signal: NodeJS.Signals): void => {
      logger.info({ event: 'daemon.signal', signal }, 'Signal received; stopping');
      void daemon.stop(0);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    const code = await daemon.done;
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    return { data: { stopped: true, exitCode: code }, text: '', exitCode: code };
  },
};
