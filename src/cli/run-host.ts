import { currentOwner } from '../proxy/containment.js';
import { createLoggers, type Loggers } from '../log/logger.js';
import { serveControl, type ControlServer } from '../host/control-server.js';
import { Host } from '../host/host.js';
import { StateFile } from '../host/state-file.js';
import { HANDOVER_ENV } from '../host/handover-protocol.js';
import type { Successor } from '../host/handover.js';
import type { HostOptions } from './command-line.js';
import { ExitStatus } from './exit-status.js';
import { commandLineVerdict } from './hosted-command.js';
import { packageVersion } from './version.js';

/** Clients a pod keeps waiting for its connection rate; more are refused (each holds a socket and its read buffer). */
const MAX_WAITING_CLIENTS = 256;

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
  const status = (h: Host) => {
    const moving = h.size - h.ownSize;
    const still = moving > 0 ? `, ${moving} still in the previous process` : '';
    systemd.notifier.status(`${h.size === 1 ? '1 pod' : `${h.size} pods`}${still}`);
  };
  const host = new Host({
    loggers,
    stateFile,
    onChange: status,
    turnSliceMs: options.podSliceMs,
    podThreads: { count: options.podThreads, log: { level: options.logLevel, format: options.logFormat }, busyNice: options.podThreadNice },
    rebalanceMs: options.podRebalanceMs,
    ...(options.podLogRate > 0 ? { consoleRateCap: { perSecond: options.podLogRate, burst: options.podLogRate * 10 } } : {}),
    ...(options.podConnRate > 0 ? { connectionRate: { perSecond: options.podConnRate, burst: options.podConnRate * 2, maxWaiting: MAX_WAITING_CLIENTS } } : {}),
  });
  // Set once a reload handed every pod to the next version: this process then steps aside.
  let handedOver!: (successor: Successor) => void;
  const stepAside = new Promise<Successor>((r) => (handedOver = r));
  const upgrade = async (): Promise<object> => {
    const { reload } = await import('../host/handover.js');
    const { report, successor } = await reload({ host, control: control.server, log, notifier: systemd.notifier });
    setImmediate(() => handedOver(successor)); // after the answer is on its way
    return report;
  };
  let control: ControlServer;
  if (process.env[HANDOVER_ENV] === '1' && process.send) {
    // Started by a reload: the pods come from the running host, not from the state file.
    const { takeOver } = await import('../host/takeover.js');
    let takeover;
    try {
      takeover = await takeOver(host, log);
    } catch (err) {
      log.error({ err: (err as Error).message }, 'reload: not taking over');
      await host.close();
      return ExitStatus.Failure;
    }
    control = await serveControl(host, { server: takeover.control }, log, { upgrade, readCommandLine: commandLineVerdict });
    await host.persist().catch((err: Error) => log.error({ err: err.message }, 'cannot write the state file'));
    await takeover.serving();
    log.info({ pods: host.size, moved: takeover.moved }, 'host ready (reloaded)');
    systemd.notifier.ready();
    status(host);
    systemd.notifier.repeatStatus();
    takeover.ready();
  } else {
    let records;
    try {
      records = await stateFile.load((index, reason) =>
        log.error({ pod: index, err: reason, kept: `${options.stateFile}.rejected` }, 'a pod of the state file cannot be re-created; skipped'),
      );
    } catch (err) {
      log.error({ err: (err as Error).message }, 'cannot read the state file');
      return ExitStatus.Failure;
    }
    await host.restore(records);
    try {
      control = await serveControl(host, systemd.listenFd !== undefined ? { fd: systemd.listenFd } : { path: options.controlSocket }, log, { upgrade, readCommandLine: commandLineVerdict });
    } catch (err) {
      log.error({ err: (err as Error).message, socket: options.controlSocket }, 'cannot serve the control socket');
      await host.close();
      return ExitStatus.Failure;
    }
    log.info({ pods: records.length }, 'host ready');
    systemd.notifier.ready();
    status(host);
  }

  const stop = await Promise.race([stopSignal, stepAside]);
  if (typeof stop !== 'string') {
    // Reloaded: the pods, the listen sockets and the control socket are the new process's. Nothing
    // is closed here (closing a listen socket would remove its path): the descriptors go with us.
    control.handOff();
    await handOverRest(host, stop, log);
    // The new process died while pods still waited here: they end with us, and the restarted
    // service re-creates them from the state file (the new process kept them there).
    const stranded = host.ownSize > 0;
    if (stranded) log.error({ pods: host.ownSize, err: stop.dead?.message }, 'reload: the new process is gone; pods not yet handed over end here');
    systemd.notifier.stop();
    await loggers.writer.flush();
    // Connections accepted until now went to the new process; none can come between this check and the exit.
    await stop.lateSent();
    process.exit(stranded ? ExitStatus.Failure : ExitStatus.Ok);
  }
  const signal = stop;
  log.info({ signal }, 'stopping every pod');
  systemd.notifier.stopping();
  await control.close();
  await host.close();
  systemd.notifier.stop();
  await loggers.writer.flush();
  return ExitStatus.Ok;
}

/**
 * Pods that could not move during the reload (a guest or client that did not read) carry on here
 * and are handed over as soon as they can; the new process lists them meanwhile, with the reason,
 * and this process says in its log which pods keep it. Then the clients this process still
 * accepted on the listen sockets are passed on, and it may go.
 */
async function handOverRest(host: Host, successor: Successor, log: Loggers['proxy']): Promise<void> {
  let loggedAt = 0;
  while (host.ownSize > 0 && !successor.dead) {
    await new Promise((r) => setTimeout(r, 1000));
    const reasons = new Map<string, string>();
    for (const id of host.ids()) {
      const result = await host.handOver(
        id,
        1000,
        (item) => successor.takePod(item, 15_000),
        (podId, client) => successor.late(podId, client),
      );
      if (result.result === 'moved') log.info({ sandbox: id }, 'reload: pod handed over late');
      if (result.result === 'stayed') reasons.set(id, result.reason);
    }
    try {
      successor.send({ t: 'remaining', pods: await host.remainingPods(reasons) });
    } catch {
      // gone: the loop ends
    }
    if (reasons.size > 0 && Date.now() - loggedAt >= REMAINING_LOG_MS) {
      loggedAt = Date.now();
      log.warn({ pods: Object.fromEntries(reasons), successor: successor.pid }, 'reload: these pods still run in this process; retrying each second');
    }
  }
}

/** How often the previous process says which pods keep it. */
const REMAINING_LOG_MS = 60_000;

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
