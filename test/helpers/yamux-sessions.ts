// Our engine's Session over Unix sockets, for tests against other peers (Go, raw frames).
import { once } from 'node:events';
import net from 'node:net';
import { Session, type SessionOptions, type Stream } from '../../src/yamux/index.js';
import { LinkChecker } from './frames.js';
import { startRechunkRelay } from './rechunk-relay.js';
import { serveService, type ServeOptions, type ServiceReport } from './services.js';

/** Connects to `path` and runs a Session over the socket. */
export async function connectSession(path: string, options: SessionOptions): Promise<Session> {
  const socket = net.connect({ path, allowHalfOpen: true });
  await once(socket, 'connect');
  return new Session(socket, options);
}

export interface SessionListener {
  readonly server: net.Server;
  readonly sessions: Session[];
  /** The next session (a connection already made or a future one). */
  next(): Promise<Session>;
  close(): Promise<void>;
}

/** Listens on `path`; every connection becomes a Session with `options`. */
export async function listenSessions(path: string, options: SessionOptions): Promise<SessionListener> {
  const sessions: Session[] = [];
  let taken = 0;
  const takers: ((s: Session) => void)[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    const session = new Session(socket, options);
    sessions.push(session);
    const t = takers.shift();
    if (t) {
      taken++;
      t(session);
    }
  });
  server.listen(path);
  await once(server, 'listening');
  return {
    server,
    sessions,
    next() {
      if (taken < sessions.length) return Promise.resolve(sessions[taken++]!);
      return new Promise((r) => takers.push(r));
    },
    async close() {
      for (const s of sessions) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

/** Session options that serve every inbound stream with the test services; reports collected. */
export function serviceOptions(
  role: 'client' | 'server',
  reports: ServiceReport[],
  extra: Partial<SessionOptions> & { serve?: ServeOptions } = {},
): SessionOptions {
  const { serve, ...rest } = extra;
  return {
    role,
    config: { enableKeepAlive: false },
    onStream: (stream: Stream) => {
      void serveService(stream, serve).then((r) => reports.push(r));
    },
    ...rest,
  };
}

/** Resolves with the session's close error (undefined when clean). */
export function sessionClosed(session: Session): Promise<Error | undefined> {
  if (session.closed) return Promise.resolve(session.terminalError ?? undefined);
  return new Promise((r) => session.once('close', (err?: Error) => r(err)));
}

/** Waits until `cond()` holds (polling), or throws with `what`. */
export async function waitUntil(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * Our server sessions (serving the test services) behind a relay whose tap checks every frame
 * on the link; `cleanups` receives what to close.
 */
export async function ourServerBehindCheckedRelay(
  socketPath: (name: string) => string,
  cleanups: (() => unknown)[],
  relay: { seed?: number; rechunk?: boolean } = {},
): Promise<{ relayPath: string; reports: ServiceReport[]; checker: LinkChecker }> {
  const serverPath = socketPath('ts');
  const reports: ServiceReport[] = [];
  const listener = await listenSessions(serverPath, serviceOptions('server', reports));
  cleanups.push(() => listener.close());
  const checker = new LinkChecker();
  const started = await startRechunkRelay({
    listenPath: socketPath('relay'),
    targetPath: serverPath,
    ...relay,
    tap: (from, chunk) => checker.observe(from, chunk),
  });
  cleanups.push(() => started.close());
  return { relayPath: started.path, reports, checker };
}
