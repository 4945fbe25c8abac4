import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Loggers } from '../log/logger.js';
import { ConsoleRelay } from '../channel/console-relay.js';
import { connectWithRetry } from '../channel/unix-socket.js';
import { listenOnFd, listenOnPath } from '../proxy/listener.js';
import { Proxy, type ProxyEnd } from '../proxy/proxy.js';
import { ExitStatus } from './exit-status.js';

/** What the daemon needs once the command line is parsed and the logger exists. */
export interface DaemonSettings {
  listenSocket: string;
  /** A listening socket inherited from systemd, used instead of creating listenSocket. */
  inheritedFd?: number;
  listenMode: number;
  muxSocket?: string;
  muxDevice?: { path: string; baudRate: number };
  agentLogsSocket?: string;
  agentLogRate: number;
  retryTimeoutMs: number;
  drainTimeoutMs: number;
  heartbeatMs: number;
}

/** Hooks into the host: sd_notify, and where the serial module comes from (loaded lazily). */
export interface DaemonHooks {
  notify?: { ready(): void; status(text: string): void; stopping(): void; stop(): void };
  openSerial?: (path: string, baudRate: number, timeoutMs: number, signal: AbortSignal) => Promise<Duplex>;
}

/**
 * Runs one pod's proxy in this process until it ends; resolves with the exit status.
 * Signals: SIGTERM/SIGINT stop it (status 0); SIGUSR1 logs a diagnostic dump.
 */
export async function runDaemon(settings: DaemonSettings, loggers: Loggers, hooks: DaemonHooks = {}): Promise<ExitStatus> {
  const log = loggers.proxy;
  let server: net.Server;
  try {
    server =
      settings.inheritedFd !== undefined
        ? await listenOnFd(settings.inheritedFd)
        : await listenOnPath(settings.listenSocket, settings.listenMode);
  } catch (err) {
    log.error({ err: (err as Error).message, socket: settings.listenSocket }, 'cannot create the listen socket');
    return ExitStatus.Failure;
  }

  const relay = settings.agentLogsSocket
    ? new ConsoleRelay({
        socketPath: settings.agentLogsSocket,
        agentLog: loggers.agent,
        log,
        retryTimeoutMs: settings.retryTimeoutMs,
        ratePerSecond: settings.agentLogRate,
      })
    : null;
  // The console goes first so that the guest's early boot output is kept (as the Go proxy does).
  const relayStarted = relay?.start().catch((err: Error) => {
    log.warn({ err: err.message }, 'guest console not available; agent logs will not be relayed');
  });

  const proxy = new Proxy({
    server,
    logger: log,
    heartbeatMs: settings.heartbeatMs,
    drainTimeoutMs: settings.drainTimeoutMs,
    openGuestChannel: (signal) => openGuestChannel(settings, log, hooks, signal),
  });
  proxy.on('status', (text: string) => hooks.notify?.status(text));
  proxy.on('ready', () => hooks.notify?.ready());

  const onStop = (signal: string) => {
    log.info({ signal }, 'stopping');
    hooks.notify?.stopping();
    void proxy.stop();
  };
  const onTerm = () => onStop('SIGTERM');
  const onInt = () => onStop('SIGINT');
  const onDump = () => dump(proxy, log);
  process.on('SIGTERM', onTerm);
  process.on('SIGINT', onInt);
  process.on('SIGUSR1', onDump);

  try {
    await proxy.start().catch((err: Error) => {
      log.error({ err: err.message }, 'cannot reach the guest channel');
    });
    return exitStatusOf(await proxy.whenEnded());
  } finally {
    process.off('SIGTERM', onTerm);
    process.off('SIGINT', onInt);
    process.off('SIGUSR1', onDump);
    relay?.stop();
    await relayStarted;
    hooks.notify?.stop();
  }
}

function openGuestChannel(settings: DaemonSettings, log: Logger, hooks: DaemonHooks, signal: AbortSignal): Promise<Duplex> {
  if (settings.muxDevice) {
    if (!hooks.openSerial) throw new Error('serial devices are not supported in this build');
    return hooks.openSerial(settings.muxDevice.path, settings.muxDevice.baudRate, settings.retryTimeoutMs, signal);
  }
  return connectWithRetry(settings.muxSocket!, {
    timeoutMs: settings.retryTimeoutMs,
    signal,
    onRetry: (attempt, err, delayMs) =>
      log.debug({ attempt, err: err.code ?? err.message, delayMs }, 'guest channel not ready; retrying'),
  });
}

function exitStatusOf(end: ProxyEnd): ExitStatus {
  switch (end.reason) {
    case 'stopped':
      return ExitStatus.Ok;
    case 'guest-ended':
      return ExitStatus.GuestEnded;
    case 'failed':
      return ExitStatus.Failure;
  }
}

function dump(proxy: Proxy, log: Logger): void {
  const d = proxy.diagnostics();
  log.info(
    { state: d.state, clients: d.clients, connectionsServed: d.connectionsServed, session: d.session, memory: d.memory },
    'diagnostics: session',
  );
  for (const stream of d.streams) log.info({ ...stream }, 'diagnostics: stream');
}
