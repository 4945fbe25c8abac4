import { EventEmitter } from 'node:events';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { lstatSync, unlinkSync } from 'node:fs';
import { ConsoleRelay, RECORD_BYTES, type ConsoleRelayState } from '../channel/console-relay.js';
import { connectWithRetry } from '../channel/unix-socket.js';
import type { Loggers } from '../log/logger.js';
import type { SessionStats, StreamStats } from '../yamux/index.js';
import type { ConnectionRate } from './connection-admission.js';
import { containEmitter, runAs, type FaultOwner } from './containment.js';
import type { ProxyDiagnostics } from './diagnostics.js';
import { LISTENER_OPTIONS, listenDetached, listenOnFd, listenOnPath } from './listener.js';
import type { PodSettings } from './pod-settings.js';
import { Proxy, type ProxyEnd, type ProxyParts } from './proxy.js';
import { TurnPacer } from './turn-pacer.js';

export type PodState = 'connecting' | 'serving' | 'stopping' | 'stopped';

/** How a pod ended; `status` is the per-pod daemon's exit status for it. */
export interface PodEnd {
  reason: 'stopped' | 'guest-ended' | 'failed';
  error?: string;
  status: 0 | 1 | 3;
  /** Who stopped it, for a 'stopped' pod: 'removed', 'handle gone', 'signal SIGTERM', ... */
  cause?: string;
}

export interface PodSnapshot {
  state: PodState;
  clients: number;
  streams: number;
  /** Bytes from the guest to the clients / from the clients to the guest. */
  bytesIn: number;
  bytesOut: number;
  uptimeMs: number;
  connectionsServed: number;
  end?: PodEnd;
}

export interface PodDetail extends PodSnapshot {
  session: SessionStats | null;
  streamDetail: StreamStats[];
}

/** What a pod hands to its successor in another process (see pod-handover.ts). */
export interface PodParts {
  createdAt: number;
  server: net.Server;
  proxy: ProxyParts;
  console: { socket: net.Socket | null; state: ConsoleRelayState } | null;
}

export interface PodOptions {
  settings: PodSettings;
  loggers: Loggers;
  /** Opens a tty; default: the serial module, loaded only when a pod uses a device. */
  openSerial?: (path: string, baudRate: number, timeoutMs: number, signal: AbortSignal) => Promise<Duplex>;
  /**
   * Where pods share one log writer (host mode): this pod's key, so that its console lines fill
   * at most a share of the writer's queue and a flooding guest cannot crowd out the others.
   */
  logShare?: string;
  /**
   * The pod's slice of each event-loop turn for its reads, ms; 0 or unset: unpaced. In one process
   * with many pods this is what keeps a busy or hostile pod from making its neighbours wait; a
   * pod alone in its process (the per-pod daemon) has nobody to share with, and yielding would
   * cost its own echo throughput (~20 % in an A/B).
   */
  turnSliceMs?: number;
  /**
   * A cap on the console lines relayed per second, whatever the pod's own setting (host mode's
   * default): lines over it cost a scan for line ends, not a record each.
   */
  consoleRateCap?: { perSecond: number; burst: number };
  /** New connections per second the pod serves at most (host mode); unset: unlimited. */
  connectionRate?: ConnectionRate;
  /** A read buffer the consoles of many pods share (ConsoleRelayOptions.readBuffer). */
  consoleReadBuffer?: Buffer;
  /**
   * On a worker thread: dup(), to serve the listen socket from a copy that Node never removes the
   * path of when the thread ends (listener.ts, listenDetached); the pod removes it when it ends.
   */
  detachListenPath?: (fd: number) => number;
}

/**
 * One pod: its listen socket, guest channel (Unix socket or tty), Proxy (yamux session,
 * heartbeat, clients) and console relay. No process-global state: the per-pod daemon runs one,
 * the host runs many. Every event of its sockets and channel runs contained (containment.ts): an
 * exception in the pod's code ends this pod with reason "failed", not the process.
 *
 * Events: 'status' (text), 'ready', 'end' (PodEnd, once).
 */
export class Pod extends EventEmitter implements FaultOwner {
  private readonly log: Logger;
  private createdAt = Date.now();
  /**
   * The listen socket's inode when Node would not remove its path on close (it came from another
   * process, or was detached): its path is ours to remove.
   */
  private adoptedInode: number | null = null;
  private server: net.Server | null = null;
  private proxy: Proxy | null = null;
  private relay: ConsoleRelay | null = null;
  private relayStarted: Promise<void> | undefined;
  private readonly clients = new Set<net.Socket>();
  private readonly pacer: TurnPacer | undefined;
  private failure: Error | null = null;
  private stopCause: string | undefined;
  private endInfo: PodEnd | null = null;
  private readonly ended: Promise<PodEnd>;
  private resolveEnded!: (end: PodEnd) => void;

  constructor(private readonly options: PodOptions) {
    super();
    this.log = options.loggers.proxy;
    const slice = options.turnSliceMs ?? 0;
    this.pacer = slice > 0 ? new TurnPacer(slice) : undefined;
    this.ended = new Promise((resolve) => (this.resolveEnded = resolve));
  }

  get state(): PodState {
    if (this.endInfo) return 'stopped';
    const s = this.proxy?.state ?? 'new';
    return s === 'new' ? 'connecting' : s;
  }

  get end(): PodEnd | null {
    return this.endInfo;
  }

  /**
   * Creates the listen socket, then reaches for the guest in the background; resolves once the
   * listen socket exists. Rejects (and the pod ends, failed) if it cannot be created.
   */
  async start(): Promise<void> {
    if (this.endInfo) return; // stopped before it started
    if (this.server) throw new Error('pod already started');
    const s = this.options.settings;
    const server = net.createServer(LISTENER_OPTIONS);
    // Clients may connect as soon as the socket exists, before listen resolves (its chmod is
    // still pending, or systemd queued them): they are kept and served like any other.
    const early: net.Socket[] = [];
    const hold = (client: net.Socket) => early.push(client);
    server.on('connection', hold);
    try {
      const detach = this.options.detachListenPath;
      if (s.inheritedFd !== undefined) await listenOnFd(s.inheritedFd, server);
      else if (detach) {
        await listenDetached(s.listenSocket, s.listenMode, detach, server);
        this.adoptedInode = lstatSync(s.listenSocket).ino;
      } else await listenOnPath(s.listenSocket, s.listenMode, server);
    } catch (err) {
      this.finalize({ reason: 'failed', error: (err as Error).message, status: 1 });
      throw err;
    } finally {
      server.off('connection', hold);
    }
    if (this.endInfo) {
      server.close(); // stopped while the socket was being created
      for (const client of early) client.destroy();
      return;
    }
    this.server = server;
    try {
      runAs(this, () => this.run(server));
      for (const client of early) server.emit('connection', client);
    } catch (err) {
      this.fail(err);
    }
  }

  // ---- handover (pod-handover.ts) --------------------------------------------------------

  /** Stops the pod where it stands and gives its parts; null when it cannot move now. */
  suspend(): PodParts | null {
    if (this.endInfo || !this.server || !this.proxy) return null;
    const proxy = this.proxy.suspend();
    if (!proxy) return null;
    return { createdAt: this.createdAt, server: this.server, proxy, console: this.relay?.suspend() ?? null };
  }

  /** The parts again (after waiting for writes to flush): the session's queues may have moved. */
  parts(): PodParts {
    return { createdAt: this.createdAt, server: this.server!, proxy: this.proxy!.parts(), console: this.relay?.suspend() ?? null };
  }

  /** Every socket the pod holds now: listen socket, guest channel, clients, console. */
  sockets(): (net.Socket | net.Server)[] {
    if (this.endInfo || !this.server) return [];
    const out: (net.Socket | net.Server)[] = [this.server, ...(this.proxy?.sockets() ?? [])];
    const consoleSocket = this.relay?.connection;
    if (consoleSocket) out.push(consoleSocket);
    return out;
  }

  /** The handover did not happen: the pod carries on here. */
  resume(): void {
    this.proxy?.resume();
    this.relay?.resume();
  }

  /**
   * Handed over: the pod lets go of everything without a frame or a shutdown, and never ends
   * (its successor runs on). The listen socket stays open, so that its path is not removed;
   * clients this process still accepts on it go to `late`. Returns the clients accepted since
   * the parts were taken.
   */
  release(late: (client: net.Socket) => void): net.Socket[] {
    this.endInfo = { reason: 'stopped', status: 0 };
    this.relay?.release();
    const waiting = this.proxy?.release(late) ?? [];
    this.clients.clear();
    return waiting;
  }

  /** A client accepted on this pod's listen socket by the process that handed it over. */
  acceptLate(client: net.Socket): void {
    if (this.server && !this.endInfo) this.server.emit('connection', client);
    else client.destroy();
  }

  /** Carries on a pod another process handed over; it is serving at once. */
  static adopt(options: PodOptions, parts: PodParts): Pod {
    const pod = new Pod(options);
    pod.createdAt = parts.createdAt;
    pod.server = parts.server;
    try {
      pod.adoptedInode = lstatSync(options.settings.listenSocket).ino;
    } catch {
      pod.adoptedInode = null;
    }
    try {
      runAs(pod, () => pod.run(parts.server, parts));
    } catch (err) {
      pod.fail(err);
    }
    return pod;
  }

  /** Resolves once the yamux session is up; rejects with the end if the pod ends first. */
  whenServing(): Promise<void> {
    if (this.state === 'serving') return Promise.resolve();
    if (this.endInfo) return Promise.reject(Object.assign(new Error(`pod ${this.endInfo.reason}`), { end: this.endInfo }));
    return new Promise((resolve, reject) => {
      const onReady = () => {
        this.off('end', onEnd);
        resolve();
      };
      const onEnd = (end: PodEnd) => {
        this.off('ready', onReady);
        reject(Object.assign(new Error(`pod ${end.reason}`), { end }));
      };
      this.once('ready', onReady);
      this.once('end', onEnd);
    });
  }

  whenEnded(): Promise<PodEnd> {
    return this.ended;
  }

  /**
   * Orderly stop (the per-pod SIGTERM path): GoAway, live streams may finish, then close.
   * `cause` says who stopped it, in the record of its end.
   */
  async stop(cause = 'stopped'): Promise<PodEnd> {
    if (!this.endInfo) {
      this.stopCause ??= cause;
      if (this.proxy) await this.proxy.stop().catch((err: unknown) => this.fail(err));
      else this.finalize({ reason: 'stopped', status: 0, cause });
    }
    return this.ended;
  }

  /** An exception from this pod's code: log it with its stack and end the pod alone. */
  fail(err: unknown): void {
    const e = err instanceof Error ? err : new Error(String(err));
    if (this.failure || this.endInfo) {
      this.log.error({ err: e.message, stack: e.stack }, 'internal error in an ended pod');
      return;
    }
    this.failure = e;
    this.log.error({ err: e.message, stack: e.stack }, 'internal error; ending this pod');
    this.server?.emit('error', e); // the Proxy ends with reason "failed"
    this.finalize({ reason: 'failed', error: e.message, status: 1 });
  }

  snapshot(): PodSnapshot {
    return this.describe(this.proxy?.diagnostics() ?? null);
  }

  detail(): PodDetail {
    const d = this.proxy?.diagnostics() ?? null;
    return { ...this.describe(d), session: d?.session ?? null, streamDetail: d?.streams ?? [] };
  }

  /** What SIGUSR1 dumps. */
  diagnostics(): ProxyDiagnostics | null {
    return this.proxy?.diagnostics() ?? null;
  }

  private describe(d: ProxyDiagnostics | null): PodSnapshot {
    let bytesIn = d?.session?.bytesIn ?? 0;
    let bytesOut = d?.session?.bytesOut ?? 0;
    for (const s of d?.streams ?? []) {
      bytesIn += s.bytesIn;
      bytesOut += s.bytesOut;
    }
    return {
      state: this.state,
      clients: this.endInfo ? 0 : (this.proxy?.clientCount ?? 0),
      streams: this.endInfo ? 0 : (this.proxy?.streamCount ?? 0),
      bytesIn,
      bytesOut,
      uptimeMs: Date.now() - this.createdAt,
      connectionsServed: d?.connectionsServed ?? 0,
      ...(this.endInfo ? { end: this.endInfo } : {}),
    };
  }

  private run(server: net.Server, adopted?: PodParts): void {
    const s = this.options.settings;
    // Registered before the Proxy's own listener: every client is contained from its first event.
    server.on('connection', (client: net.Socket) => this.track(client));
    containEmitter(server, this);
    if (s.agentLogsSocket) {
      const rate = consoleRate(s.agentLogRate, this.options.consoleRateCap);
      this.relay = new ConsoleRelay({
        socketPath: s.agentLogsSocket,
        agentLog: this.options.loggers.agent,
        log: this.log,
        retryTimeoutMs: s.retryTimeoutMs,
        ratePerSecond: rate.perSecond,
        ...(rate.burst ? { rateBurst: rate.burst } : {}),
        ...(this.pacer ? { pacer: this.pacer } : {}),
        ...(this.options.consoleReadBuffer ? { readBuffer: this.options.consoleReadBuffer } : {}),
        admit: (bytes) => this.options.loggers.writer.admit('agent', bytes, this.options.logShare),
        shedding: {
          active: () => this.options.loggers.writer.refuses('agent', RECORD_BYTES, this.options.logShare),
          count: (lines) => this.options.loggers.writer.dropped('agent', lines),
        },
      });
      // The console goes first so that the guest's early boot output is kept (as the Go proxy does).
      if (adopted) this.relay.adopt(adopted.console?.socket ?? null, adopted.console?.state ?? { partialLine: '', lines: 0, limiter: { tokens: 0, last: Date.now(), dropped: 0 } });
      else this.relayStarted = this.relay.start().catch((err: Error) => {
        this.log.warn({ err: err.message }, 'guest console not available; agent logs will not be relayed');
      });
    }
    const proxy = new Proxy({
      server,
      logger: this.log,
      heartbeatMs: s.heartbeatMs,
      drainTimeoutMs: s.drainTimeoutMs,
      ...(this.pacer ? { pacer: this.pacer } : {}),
      ...(this.options.connectionRate ? { connectionRate: this.options.connectionRate } : {}),
      openGuestChannel: (signal) => this.openGuestChannel(signal),
    });
    this.proxy = proxy;
    proxy.on('status', (text: string) => this.emit('status', text));
    proxy.on('ready', () => this.emit('ready'));
    proxy.once('end', (end: ProxyEnd) => this.finalize(this.endOf(end)));
    if (adopted) {
      containEmitter(adopted.proxy.channel, this);
      for (const { socket } of adopted.proxy.clients) this.track(socket);
      proxy.adopt(adopted.proxy);
      return;
    }
    proxy.start().catch((err: Error) => {
      if (this.endInfo?.reason !== 'stopped') this.log.error({ err: err.message }, 'cannot reach the guest channel');
    });
  }

  /** A listen socket bound by another process: Node would not remove its path on close. */
  private removeAdoptedPath(): void {
    if (this.adoptedInode === null) return;
    const path = this.options.settings.listenSocket;
    try {
      if (lstatSync(path).ino === this.adoptedInode) unlinkSync(path);
    } catch {
      // already gone
    }
  }

  private track(client: net.Socket): void {
    containEmitter(client, this);
    this.clients.add(client);
    client.once('close', () => this.clients.delete(client));
  }

  private async openGuestChannel(signal: AbortSignal): Promise<Duplex> {
    const s = this.options.settings;
    let channel: Duplex;
    if (s.muxDevice) {
      const open = this.options.openSerial ?? openSerial;
      channel = await open(s.muxDevice.path, s.muxDevice.baudRate, s.retryTimeoutMs, signal);
    } else {
      channel = await connectWithRetry(s.muxSocket!, {
        timeoutMs: s.retryTimeoutMs,
        signal,
        onRetry: (attempt, err, delayMs) =>
          this.log.debug({ attempt, err: err.code ?? err.message, delayMs }, 'guest channel not ready; retrying'),
      });
    }
    containEmitter(channel, this);
    return channel;
  }

  private endOf(end: ProxyEnd): PodEnd {
    if (this.failure) return { reason: 'failed', error: this.failure.message, status: 1 };
    switch (end.reason) {
      case 'stopped':
        return { reason: 'stopped', status: 0, cause: this.stopCause ?? 'stopped' };
      case 'guest-ended':
        return { reason: 'guest-ended', ...(end.error ? { error: end.error.message } : {}), status: 3 };
      case 'failed':
        return { reason: 'failed', error: end.error.message, status: 1 };
    }
  }

  private finalize(end: PodEnd): void {
    if (this.endInfo) return;
    const summary = this.describe(this.proxy?.diagnostics() ?? null);
    this.endInfo = end;
    logEnd(this.log, end, summary);
    this.server?.close();
    this.removeAdoptedPath();
    for (const client of this.clients) client.destroy();
    this.clients.clear();
    this.relay?.stop();
    const relayStarted = this.relayStarted;
    void (async () => {
      await relayStarted;
      this.emit('end', end);
      this.resolveEnded(end);
    })();
  }
}

/** The pod's own console rate (0: all lines) under the process's cap, if any. */
function consoleRate(own: number, cap: PodOptions['consoleRateCap']): { perSecond: number; burst?: number } {
  if (!cap || cap.perSecond <= 0) return { perSecond: own };
  if (own > 0 && own <= cap.perSecond) return { perSecond: own };
  return { perSecond: cap.perSecond, burst: cap.burst };
}

/** One record per pod's end, so that an operator reading the journal knows why a pod went. */
function logEnd(log: Logger, end: PodEnd, s: PodSnapshot): void {
  const fields = {
    reason: end.reason,
    ...(end.cause ? { cause: end.cause } : {}),
    ...(end.error ? { err: end.error } : {}),
    status: end.status,
    connections: s.connectionsServed,
    bytesIn: s.bytesIn,
    bytesOut: s.bytesOut,
    uptimeMs: s.uptimeMs,
  };
  if (end.reason === 'stopped') log.info(fields, 'pod ended');
  else if (end.reason === 'guest-ended') log.warn(fields, 'pod ended');
  else log.error(fields, 'pod ended');
}

async function openSerial(path: string, baudRate: number, timeoutMs: number, signal: AbortSignal): Promise<Duplex> {
  const { openSerialChannel } = await import('../channel/serial.js');
  return openSerialChannel(path, baudRate, { timeoutMs, signal });
}
