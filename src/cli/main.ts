import type { Logger } from 'pino';
import { announce } from '../log/announce.js';
import { createLoggers } from '../log/logger.js';
import type { LogWriter } from '../log/log-writer.js';
import { parseCommandLine, type DaemonOptions } from './command-line.js';

export { prepareStart } from './start-warm-up.js';
import { ExitStatus } from './exit-status.js';
import { runDaemon, type DaemonSettings } from './run-daemon.js';
import { packageVersion } from './version.js';

/** How long after its last record a stopped daemon may take to exit by itself. */
const EXIT_BACKSTOP_MS = 500;

/** Entry point of bin/kata-proxy. Sets process.exitCode; never forks. */
export async function main(argv: string[]): Promise<void> {
  const command = parseCommandLine(argv);
  switch (command.kind) {
    case 'exit':
      if (command.stdout) process.stdout.write(command.stdout);
      if (command.stderr) process.stderr.write(command.stderr);
      process.exitCode = command.code;
      return;
    case 'daemon':
      process.exitCode = await daemon(command.options);
      return;
    case 'demo': {
      const { runDemo } = await import('../sim/demo.js');
      process.exitCode = await runDemo({ stay: command.stay });
      return;
    }
    case 'simulate-guest': {
      const { serveSimulatedGuest } = await import('../sim/serve.js');
      process.exitCode = await serveSimulatedGuest(command.listen, command.console);
      return;
    }
    case 'host': {
      const { runHost } = await import('./run-host.js');
      const status = await runHost(command.options);
      process.exitCode = status;
      setTimeout(() => process.exit(status), EXIT_BACKSTOP_MS).unref();
      return;
    }
    case 'pod': {
      const { runPodCommand } = await import('./pod-client.js');
      process.exitCode = await runPodCommand(command.command);
      return;
    }
    case 'install-units': {
      const { installUnitsCommand } = await import('../systemd/install-units.js');
      process.exitCode = await installUnitsCommand(command.dir, command.execPath, command.host);
      return;
    }
  }
}

async function daemon(options: DaemonOptions): Promise<ExitStatus> {
  const loggers = createLoggers({
    level: options.logLevel,
    format: options.logFormat,
    sink: options.logSink,
    ...(options.sandbox ? { sandbox: options.sandbox } : {}),
  });
  const log = loggers.proxy;
  installCrashHandlers(log, loggers.writer);
  announce(log, {
    version: packageVersion(),
    listenSocket: options.listenSocket,
    ...(options.muxSocket ? { muxSocket: options.muxSocket } : {}),
    ...(options.muxDevice ? { muxDevice: options.muxDevice } : {}),
    ...(options.agentLogsSocket ? { agentLogsSocket: options.agentLogsSocket } : {}),
    debug: options.debug,
    logLevel: options.logLevel,
  });
  const { systemdHooks } = await import('../systemd/hooks.js');
  const systemd = await systemdHooks(log);
  const settings: DaemonSettings = {
    listenSocket: options.listenSocket,
    ...(systemd.listenFd !== undefined ? { inheritedFd: systemd.listenFd } : {}),
    listenMode: options.listenMode,
    ...(options.muxSocket ? { muxSocket: options.muxSocket } : {}),
    ...(options.muxDevice ? { muxDevice: { path: options.muxDevice, baudRate: options.baud } } : {}),
    ...(options.agentLogsSocket ? { agentLogsSocket: options.agentLogsSocket } : {}),
    agentLogRate: options.agentLogRate,
    retryTimeoutMs: options.retryTimeoutMs,
    drainTimeoutMs: options.drainTimeoutMs,
    heartbeatMs: options.heartbeatMs,
  };
  const status = await runDaemon(settings, loggers, {
    notify: systemd.notifier,
    ...(options.controlSocket
      ? {
          onPod: async (pod) => {
            const { serveDaemonControl } = await import('./daemon-control.js');
            return serveDaemonControl(options, pod, log);
          },
        }
      : {}),
    openSerial: async (path, baudRate, timeoutMs, signal) => {
      const { openSerialChannel } = await import('../channel/serial.js');
      return openSerialChannel(path, baudRate, { timeoutMs, signal });
    },
  });
  log.info({ status }, 'exiting');
  await loggers.writer.flush();
  // Backstop: whatever a library leaves registered on the event loop (a tty poller, a timer),
  // a daemon that has stopped must end, or the runtime and systemd are left with a leaked proxy.
  setTimeout(() => process.exit(status), EXIT_BACKSTOP_MS).unref();
  return status;
}

/** An internal error is logged with its stack and ends the daemon with status 1. */
function installCrashHandlers(log: Logger, writer: LogWriter): void {
  const crash = (err: unknown) => {
    const e = err instanceof Error ? err : new Error(String(err));
    log.fatal({ err: e.message, stack: e.stack }, 'internal error');
    void writer.flush().finally(() => process.exit(ExitStatus.Failure));
  };
  process.on('uncaughtException', crash);
  process.on('unhandledRejection', crash);
}
