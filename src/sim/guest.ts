import { rmSync } from 'node:fs';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { Session } from '../yamux/index.js';
import { serveStream } from './services.js';

export interface SimulatedGuestOptions {
  /** Where QEMU would put kata.sock: a yamux SERVER is served there. */
  muxSocket: string;
  /** Optional console.sock: agent-like log lines are written there. */
  consoleSocket?: string;
  /** Interval of the console's periodic lines (ms); 0 = boot lines only. */
  consoleIntervalMs?: number;
}

/**
 * A stand-in for a Kata guest: like QEMU's chardevs it listens on Unix sockets and serves one
 * client at a time; on the mux socket it runs a yamux server (hashicorp defaults, keepalive off,
 * as the agent does) whose streams speak the services in services.ts.
 */
export class SimulatedGuest {
  private muxServer: net.Server | null = null;
  private consoleServer: net.Server | null = null;
  private readonly sessions = new Set<Session>();
  private readonly consoles = new Set<net.Socket>();
  streamsServed = 0;

  constructor(private readonly options: SimulatedGuestOptions) {}

  async start(): Promise<void> {
    this.muxServer = await listen(this.options.muxSocket, (socket) => this.onMuxConnection(socket));
    if (this.options.consoleSocket) {
      this.consoleServer = await listen(this.options.consoleSocket, (socket) => this.onConsoleConnection(socket));
    }
  }

  async stop(): Promise<void> {
    for (const session of this.sessions) session.destroy();
    for (const socket of this.consoles) socket.destroy();
    await Promise.all([close(this.muxServer), close(this.consoleServer)]);
  }

  /** Writes one line on every connected console (for tests and the demo). */
  consoleLine(line: string): void {
    for (const socket of this.consoles) socket.write(`${line}\n`);
  }

  /** Serves the guest side on any byte channel (a Unix socket, the far end of a tty). */
  serveChannel(channel: Duplex): Session {
    const session = new Session(channel, {
      role: 'server',
      config: { enableKeepAlive: false },
      onStream: (stream) => {
        this.streamsServed++;
        serveStream(stream);
      },
    });
    this.sessions.add(session);
    session.once('close', () => this.sessions.delete(session));
    return session;
  }

  private onMuxConnection(socket: net.Socket): void {
    if (this.sessions.size > 0) {
      socket.destroy(); // a chardev serves one client at a time
      return;
    }
    this.serveChannel(socket);
  }

  private onConsoleConnection(socket: net.Socket): void {
    this.consoles.add(socket);
    socket.on('error', () => {});
    socket.resume();
    const boot = [
      'time="2026-11-22T10:00:00.000000000Z" level=info msg="announce" name=kata-agent pid=1 source=agent',
      'simulated guest console ready',
    ];
    for (const line of boot) socket.write(`${line}\r\n`);
    const every = this.options.consoleIntervalMs ?? 0;
    let timer: NodeJS.Timeout | null = null;
    if (every > 0) {
      let n = 0;
      timer = setInterval(() => socket.write(`simulated agent heartbeat ${++n}\n`), every);
      timer.unref();
    }
    socket.once('close', () => {
      if (timer) clearInterval(timer);
      this.consoles.delete(socket);
    });
  }
}

async function listen(path: string, onConnection: (s: net.Socket) => void): Promise<net.Server> {
  rmSync(path, { force: true });
  const server = net.createServer({ allowHalfOpen: true }, onConnection);
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(path, resolve));
  return server;
}

function close(server: net.Server | null): Promise<void> {
  return new Promise((resolve) => (server ? server.close(() => resolve()) : resolve()));
}
