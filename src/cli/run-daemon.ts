import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Loggers } from '../log/logger.js';
import { Pod } from '../proxy/pod.js';
import type { PodSettings } from '../proxy/pod-settings.js';
import { ExitStatus } from './exit-status.js';

/** What the daemon needs once the command line is parsed and the logger exists. */
export type DaemonSettings = PodSettings;

/** Hooks into the host: sd_notify, the tty opener, and the read-only control endpoint. */
export interface DaemonHooks {
  notify?: { ready(): void; status(text: string): void; stopping(): void; stop(): void };
  openSerial?: (path: string, baudRate: number, timeoutMs: number, signal: AbortSignal) => Promise<Duplex>;
  /** Called with the pod once its listen socket exists; what it returns is closed at the end. */
  onPod?: (pod: Pod) => Promise<{ close(): Promise<void> | void }>;
}

/**
 * Runs one pod's proxy in this process until it ends; resolves with the exit status.
 * Signals: SIGTERM/SIGINT stop it (status 0); SIGUSR1 logs a diagnostic dump.
 */
export async function runDaemon(settings: DaemonSettings, loggers: Loggers, hooks: DaemonHooks = {}): Promise<ExitStatus> {
  const log = loggers.proxy;
  const pod = new Pod({ settings, loggers, ...(hooks.openSerial ? { openSerial: hooks.openSerial } : {}) });
  pod.on('status', (text: string) => hooks.notify?.status(text));
  pod.on('ready', () => hooks.notify?.ready());
  const onStop = (signal: string) => {
    log.info({ signal }, 'stopping');
    hooks.notify?.stopping();
    void pod.stop(`signal ${signal}`);
  };
  const onTerm = () => onStop('SIGTERM');
  const onInt = () => onStop('SIGINT');
  const onDump = () => dump(pod, log);
  process.on('SIGTERM', onTerm);
  process.on('SIGINT', onInt);
  process.on('SIGUSR1', onDump);
  const offSignals = () => {
    process.off('SIGTERM', onTerm);
    process.off('SIGINT', onInt);
    process.off('SIGUSR1', onDump);
  };
  try {
    await pod.start();
  } catch (err) {
    log.error({ err: (err as Error).message, socket: settings.listenSocket }, 'cannot create the listen socket');
    offSignals();
    return ExitStatus.Failure;
  }

  let controlFailed = false;
  const control = await hooks.onPod?.(pod).catch((err: Error) => {
    log.error({ err: err.message }, 'cannot serve the control socket');
    controlFailed = true;
    void pod.stop('control socket failed');
    return undefined;
  });
  try {
    const end = await pod.whenEnded();
    return controlFailed ? ExitStatus.Failure : (end.status as ExitStatus);
  } finally {
    offSignals();
    await control?.close();
    hooks.notify?.stop();
  }
}

function dump(pod: Pod, log: Logger): void {
  const d = pod.diagnostics();
  if (!d) return;
  log.info(
    { state: d.state, clients: d.clients, connectionsServed: d.connectionsServed, session: d.session, memory: d.memory },
    'diagnostics: session',
  );
  for (const stream of d.streams) log.info({ ...stream }, 'diagnostics: stream');
}
