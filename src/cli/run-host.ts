import { currentOwner } from '../proxy/containment.js';
import { createLoggers, type Loggers } from '../log/logger.js';
import { serveControl, type ControlServer } from '../host/control-server.js';
import { Host } from '../host/host.js';
import { StateFile } from '../host/state-file.js';
import type { HostOptions } from './command-line.js';
import { ExitStatus } from './exit-status.js';
import { commandLineVerdict } from './hosted-command.js';
import { packageVersion } from './version.js';

/**
 * `kata-proxy host`: re-creates the pods of the state file, serves the control socket, and runs
 * until SIGTERM/SIGINT (every pod stops in order; the state file keeps them for the next start).
 */
export async function runHost(options: HostOptions): Promise<ExitStatus> {
  // Taken before anything is announced: a SIGTERM that follows the first log line at once must
  // not meet the default disposition (the process would die unlogged, its pods unstopped).
  const stopSignal = new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  const loggers = createLoggers({ level: options.logLevel, format: options.logFormat, sink: options.logSink });
  const log = loggers.proxy;
  installLastResort(loggers);
  log.info({ version: packageVersion(), 'control-socket': options.controlSocket, 'state-file': options.stateFile }, 'announce host');
  const { systemdHooks } = await import('../systemd/hooks.js');
  const systemd = await systemdHooks(log);

  const stateFile = new StateFile(options.stateFile);
  let records;
  try {
    records = await stateFile.load((index, reason) =>
      log.error({ pod: index, err: reason, kept: `${options.stateFile}.rejected` }, 'a pod of the state file cannot be re-created; skipped'),
    );
  } catch (err) {
    log.error({ err: (err as Error).message }, 'cannot read the state file');
    return ExitStatus.Failure;
  }
  const status = (h: Host) => systemd.notifier.status(h.size === 1 ? '1 pod' : `${h.size} pods`);
  const host = new Host({
    loggers,
    stateFile,
    onChange: status,
    turnSliceMs: options.podSliceMs,
    ...(options.podLogRate > 0 ? { consoleRateCap: { perSecond: options.podLogRate, burst: options.podLogRate * 10 } } : {}),
  });
  await host.restore(records);
  let control: ControlServer;
  try {
    control = await serveControl(host, systemd.listenFd !== undefined ? { fd: systemd.listenFd } : { path: options.controlSocket }, log, commandLineVerdict);
  } catch (err) {
    log.error({ err: (err as Error).message, socket: options.controlSocket }, 'cannot serve the control socket');
    await host.close();
    return ExitStatus.Failure;
  }
  log.info({ pods: records.length }, 'host ready');
  systemd.notifier.ready();
  status(host);

  const signal = await stopSignal;
  log.info({ signal }, 'stopping every pod');
  systemd.notifier.stopping();
  await control.close();
  await host.close();
  systemd.notifier.stop();
  await loggers.writer.flush();
  return ExitStatus.Ok;
}

/**
 * The last resort: an exception no pod's entry point caught still ends only the pod whose code
 * raised it (its timers and promises carry it); one that belongs to no pod ends the host, whose
 * restart re-creates every pod from the state file.
 */
function installLastResort(loggers: Loggers): void {
  const onError = (err: unknown) => {
    const owner = currentOwner();
    if (owner) {
      owner.fail(err);
      return;
    }
    const e = err instanceof Error ? err : new Error(String(err));
    loggers.proxy.fatal({ err: e.message, stack: e.stack }, 'internal error outside any pod');
    void loggers.writer.flush().finally(() => process.exit(ExitStatus.Failure));
  };
  process.on('uncaughtException', onError);
  process.on('unhandledRejection', onError);
}
