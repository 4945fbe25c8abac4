import { EventEmitter } from 'node:events';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { resumeSerialReading, stopSerialReading } from '../channel/serial-handover.js';
import { resumeReading, stopReading } from '../channel/socket-handover.js';
import { GoAwayCode, GoAwayError, PEER_DRIVEN_MESSAGES, Session, type ReadPacer, type SessionOptions, type SessionSnapshot, type Stream, type YamuxLogger } from '../yamux/index.js';
import { Bridge } from './bridge.js';
import { ConnectionAdmission, type ConnectionRate } from './connection-admission.js';
import { diagnostics, type ProxyDiagnostics } from './diagnostics.js';
import { Heartbeat } from './heartbeat.js';
import { LogThrottle } from './log-throttle.js';

export interface ProxyOptions {
  /** The listen socket, already listening (created early so clients queue while the guest boots). */
  server: net.Server;
  /** Opens the guest channel (Unix socket to QEMU's chardev, or a tty), retrying as it sees fit. */
  openGuestChannel: (signal: AbortSignal) => Promise<Duplex>;
  logger: Logger;
  /** Ping interval that keeps QEMU's virtio-serial path moving (Kata proxy PR #91). 0 disables. */
  heartbeatMs?: number;
  /** How long stop() lets live streams finish before resetting them. */
  drainTimeoutMs?: number;
  /** The pod's share of the event loop, for reading the guest channel and the clients. */
  pacer?: ReadPacer;
  /** New connections per second the pod serves at most (host mode); unlimited without. */
  connectionRate?: ConnectionRate;
}

export type ProxyState = 'new' | 'connecting' | 'serving' | 'stopping' | 'stopped';

/** What a proxy hands to its successor in another process (see pod-handover.ts). */
export interface ProxyParts {
  channel: Duplex;
  session: SessionSnapshot;
  /** Bridged clients with their stream ids, and clients accepted while suspended (stream null). */
  clients: { socket: net.Socket; streamId: number | null }[];
  served: number;
  refused: number;
  guestGoAway: GoAwayCode | null;
}

/** The agent never opens streams toward the host: a guest that opens more than this is hostile. */
const MAX_GUEST_OPENED_STREAMS = 64;

/** Why the proxy ended, for the exit status. */
export type ProxyEnd = { reason: 'stopped' } | { reason: 'guest-ended'; error?: Error } | { reason: 'failed'; error: Error };

/**
 * One pod's proxy: owns its listen socket, its yamux client session on the guest channel, the
 * client connections and their streams, and its child logger. No process-global state, so many
 * can live in one process.
 *
 * Events: 'status' (text for sd_notify), 'ready', 'end' (ProxyEnd, once).
 */
export class Proxy extends EventEmitter {
  state: ProxyState = 'new';
  private session: Session | null = null;
  private channel: Duplex | null = null;
  /** A handover is taking this proxy's state: new clients wait unserved. */
  private suspended = false;
  private readonly pending = new Set<net.Socket>();
  private readonly clients = new Map<net.Socket, Bridge>();
  private readonly abort = new AbortController();
  private readonly heartbeat: Heartbeat;
  private readonly log: Logger;
  private readonly yamuxLog: Logger;
  /** Lines a guest can repeat at will are aggregated here, per pod. */
  private readonly throttle = new LogThrottle();
  private readonly admission: ConnectionAdmission | null;
  private ended: ProxyEnd | null = null;
  private served = 0;
  private refused = 0;
  private guestGoAway: GoAwayCode | null = null;

  constructor(private readonly options: ProxyOptions) {
    super();
    this.log = options.logger;
    this.yamuxLog = options.logger.child({ component: 'yamux' });
    this.heartbeat = new Heartbeat(options.heartbeatMs ?? 1000, this.log);
    this.admission = options.connectionRate
      ? new ConnectionAdmission(options.connectionRate, (client) => this.dispatch(client, true), (client) => this.refuse(client, 'client refused: too many clients waiting for the pod\'s connection rate'))
      : null;
    options.server.on('connection', this.onConnection);
    options.server.on('error', (err) => this.finish({ reason: 'failed', error: err }));
  }

  get clientCount(): number {
    return this.clients.size + this.pending.size + (this.admission?.waiting ?? 0);
  }

  get streamCount(): number {
    return this.session?.streamCount ?? 0;
  }

  /** Connects the guest channel and starts serving; resolves once the yamux session is up. */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error(`proxy already ${this.state}`);
    this.state = 'connecting';
    this.emit('status', 'waiting for guest');
    let channel: Duplex;
    try {
      channel = await this.options.openGuestChannel(this.abort.signal);
    } catch (err) {
      if (this.state === 'connecting') this.finish({ reason: 'failed', error: err as Error });
      throw err;
    }
    if (this.state !== 'connecting') {
      channel.destroy();
      return;
    }
    this.channel = channel;
    this.begin(new Session(channel, this.sessionOptions()));
    this.log.info('guest channel connected, yamux session up');
    this.emit('ready');
    this.emitStatus();
    for (const client of this.pending) this.serve(client);
    this.pending.clear();
  }

  // ---- handover ---------------------------------------------------------------------------

  /**
   * Stops this proxy where it stands: nothing is read from the guest or the clients any more
   * (at their handles), no frame is written, the heartbeat stops; new clients wait unserved.
   * Null when it is not serving (nothing to hand over yet, or already ending).
   */
  suspend(): ProxyParts | null {
    if (this.state !== 'serving' || !this.session || !this.channel || this.suspended) return null;
    this.suspended = true;
    // Clients waiting for the connection rate are handed over unserved, like those accepted now.
    for (const client of this.admission?.drain() ?? []) this.pending.add(client);
    this.heartbeat.stop();
    if (this.channel instanceof net.Socket) stopReading(this.channel);
    else stopSerialReading(this.channel);
    this.session.suspend();
    for (const client of this.clients.keys()) stopReading(client);
    return this.parts();
  }

  /** The state now (after suspend(): the caller may wait for writes to flush, then take it again). */
  parts(): ProxyParts {
    const clients: ProxyParts['clients'] = [...this.clients].map(([socket, bridge]) => ({ socket, streamId: bridge.streamId }));
    for (const socket of this.pending) clients.push({ socket, streamId: null });
    return {
      channel: this.channel!,
      session: this.session!.snapshot(),
      clients,
      served: this.served,
      refused: this.refused,
      guestGoAway: this.guestGoAway,
    };
  }

  /** The guest channel and every client socket now (a reload passes them to the next host at its start). */
  sockets(): net.Socket[] {
    const out = [...this.clients.keys(), ...this.pending];
    if (this.channel instanceof net.Socket) out.push(this.channel);
    return out;
  }

  /** The handover did not happen: carry on. */
  resume(): void {
    if (!this.suspended) return;
    this.suspended = false;
    if (this.state !== 'serving' || !this.session) return;
    this.session.resume();
    if (this.channel instanceof net.Socket) resumeReading(this.channel);
    else if (this.channel) resumeSerialReading(this.channel);
    for (const client of this.clients.keys()) resumeReading(client);
    this.heartbeat.start(this.session);
    for (const client of this.pending) this.serve(client);
    this.pending.clear();
  }

  /**
   * Handed over: lets go of everything without a frame, an event or a shutdown; the sockets are
   * closed in this process only. Returns the clients accepted since the state was taken (their
   * new owner serves them); later ones go to `late`.
   */
  release(late: (client: net.Socket) => void): net.Socket[] {
    this.state = 'stopped';
    this.ended = { reason: 'stopped' };
    this.abort.abort();
    this.heartbeat.stop();
    this.session?.release();
    this.options.server.off('connection', this.onConnection);
    this.options.server.removeAllListeners('error');
    this.options.server.on('error', () => {});
    this.options.server.on('connection', late);
    for (const [client, bridge] of this.clients) {
      bridge.detach();
      quietlyClose(client);
    }
    this.clients.clear();
    if (this.channel) quietlyClose(this.channel);
    const waiting = [...this.pending];
    this.pending.clear();
    return waiting;
  }

  /** Carries on a proxy another process handed over (the listen socket is already ours). */
  adopt(parts: ProxyParts): void {
    if (this.state !== 'new') throw new Error(`proxy already ${this.state}`);
    const session = Session.adopt(parts.channel, this.sessionOptions(), parts.session);
    this.channel = parts.channel;
    this.served = parts.served;
    this.refused = parts.refused;
    this.guestGoAway = parts.guestGoAway;
    this.begin(session);
    const streams = new Map<number, Stream>();
    for (const stream of session.streams()) streams.set(stream.id, stream);
    for (const { socket, streamId } of parts.clients) {
      const stream = streamId === null ? undefined : streams.get(streamId);
      if (streamId === null) this.serve(socket);
      else if (stream) {
        streams.delete(streamId);
        this.bridge(socket, stream);
      } else socket.destroy(); // its stream ended in the meantime
    }
    // A stream whose client was gone when the state was taken: the guest hears RST.
    for (const stream of streams.values()) {
      stream.on('error', () => {});
      stream.destroy();
    }
    this.emit('ready');
    this.emitStatus();
  }

  private sessionOptions(): SessionOptions {
    return {
      role: 'client',
      rejectInbound: true, // the agent never opens streams toward the host
      maxRejectedStreams: MAX_GUEST_OPENED_STREAMS,
      ...(this.options.pacer ? { pacer: this.options.pacer } : {}),
      config: {
        enableKeepAlive: false,
        // A paused VM stops reading for minutes: back-pressure holds the writers, nothing times out.
        connectionWriteTimeout: 0,
        // Downloads run ahead of the window's round trip; the session's budget bounds the total.
        autoTuneWindowCap: 4 * 1024 * 1024,
        logger: this.yamuxLogger,
      },
    };
  }

  private begin(session: Session): void {
    this.session = session;
    session.on('close', (err?: Error) => this.onSessionClose(err));
    session.on('goaway', (code: GoAwayCode) => this.onGoAway(code));
    this.state = 'serving';
    this.heartbeat.start(session);
  }

  /** Orderly stop: no new connections, GoAway, let streams drain, close the channel. */
  async stop(): Promise<void> {
    if (this.state === 'stopped' || this.state === 'stopping') {
      await this.whenEnded();
      return;
    }
    const wasConnecting = this.state === 'connecting' || this.state === 'new';
    this.state = 'stopping';
    this.emit('status', 'stopping');
    this.abort.abort();
    this.options.server.close();
    for (const client of this.pending) client.destroy();
    this.pending.clear();
    for (const client of this.admission?.drain() ?? []) client.destroy();
    this.heartbeat.stop();
    if (this.session && !wasConnecting) {
      for (const pair of this.clients.values()) pair.finishRequests();
      await this.session.close(this.options.drainTimeoutMs ?? 5000);
    }
    for (const client of this.clients.keys()) client.destroy();
    this.finish({ reason: 'stopped' });
  }

  diagnostics(): ProxyDiagnostics {
    return diagnostics(this.state, this.session, this.clientCount, this.served, this.refused, this.admission);
  }

  whenEnded(): Promise<ProxyEnd> {
    if (this.ended) return Promise.resolve(this.ended);
    return new Promise((resolve) => this.once('end', resolve));
  }

  private readonly yamuxLogger: YamuxLogger = (level, msg, fields) => {
    if (PEER_DRIVEN_MESSAGES.has(msg)) this.throttle.write(this.yamuxLog, level, msg, fields);
    else this.yamuxLog[level](fields ?? {}, msg);
  };

  private readonly onConnection = (client: net.Socket): void => this.dispatch(client, false);

  /** A new client, or one whose turn under the connection rate came (`admitted`): things may have changed while it waited. */
  private dispatch(client: net.Socket, admitted: boolean): void {
    if (this.suspended && this.state === 'serving') this.pending.add(client);
    else if (this.state === 'serving' && this.guestGoAway !== null) this.refuse(client, 'client refused: guest sent GoAway');
    else if (this.state === 'serving') {
      if (this.admission && !admitted) this.admission.offer(client);
      else this.serve(client);
    } else if (this.state === 'connecting' || this.state === 'new') this.pending.add(client);
    else client.destroy();
  }

  private serve(client: net.Socket): void {
    let stream;
    try {
      stream = this.session!.open();
    } catch (err) {
      this.refuse(client, 'cannot open a stream for a new connection', (err as Error).message);
      return;
    }
    this.served++;
    this.bridge(client, stream);
  }

  private bridge(client: net.Socket, stream: Stream): void {
    const id = stream.id;
    // Nothing is formatted per connection unless the debug log wants it.
    const debug = this.log.isLevelEnabled('debug');
    if (debug) this.log.debug({ stream: id }, 'client connected');
    const pair = new Bridge(client, stream, (end) => {
      this.clients.delete(client);
      if (debug) this.log.debug({ stream: id, closedBy: end.closedBy, ...(end.error ? { err: end.error.message } : {}) }, 'client disconnected');
      this.emitStatus();
      this.endAfterGoAway();
    }, this.options.pacer);
    this.clients.set(client, pair);
    this.emitStatus();
  }

  /** Closed at once and counted; lines about it are aggregated (a guest's GoAway makes every client one). */
  private refuse(client: net.Socket, why: string, err?: string): void {
    client.destroy();
    this.refused++;
    this.throttle.write(this.log, 'warn', why, err ? { err } : undefined);
  }

  private onGoAway(code: GoAwayCode): void {
    if (this.state !== 'serving') return;
    // The agent only sends GoAway when it is going down: open streams may finish, then the proxy ends.
    this.guestGoAway = code;
    const streams = this.clients.size;
    this.log.warn({ code, streams }, 'guest sent GoAway; new clients are refused until the open streams finish');
    this.emit('status', 'guest sent GoAway; finishing open streams');
    this.endAfterGoAway();
  }

  private endAfterGoAway(): void {
    if (this.guestGoAway === null || this.state !== 'serving' || this.clients.size > 0) return;
    const why = 'guest sent GoAway; all streams finished';
    this.log.error({ code: this.guestGoAway, clientsRefused: this.refused }, why);
    this.finish({ reason: 'guest-ended', error: new GoAwayError(why, this.guestGoAway) });
  }

  private onSessionClose(err?: Error): void {
    this.heartbeat.stop();
    if (this.state === 'stopping' || this.state === 'stopped') return;
    this.state = 'stopping';
    this.log.error({ err: err?.message ?? 'closed' }, 'guest channel ended; closing all clients');
    this.options.server.close();
    for (const client of this.clients.keys()) client.destroy();
    for (const client of this.pending) client.destroy();
    this.finish({ reason: 'guest-ended', ...(err ? { error: err } : {}) });
  }

  private emitStatus(): void {
    if (this.state === 'serving' && this.listenerCount('status') > 0) this.emit('status', `serving ${this.streamCount} streams`);
  }

  private finish(end: ProxyEnd): void {
    if (this.ended) return;
    this.ended = end;
    this.state = 'stopped';
    this.throttle.flush();
    this.abort.abort();
    this.heartbeat.stop();
    this.options.server.close();
    for (const client of this.admission?.drain() ?? []) client.destroy();
    this.session?.destroy();
    this.emit('end', end);
  }
}

/** Closes this process's descriptor of a socket another process now owns: no shutdown, no events. */
function quietlyClose(socket: Duplex): void {
  socket.removeAllListeners('close');
  socket.removeAllListeners('end');
  socket.removeAllListeners('data');
  socket.removeAllListeners('error');
  socket.on('error', () => {});
  socket.destroy();
}
