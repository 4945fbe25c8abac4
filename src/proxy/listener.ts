import { chmodSync, lstatSync, mkdirSync, unlink as unlinkCallback } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';

// Not node:fs/promises: imported, it loads a dozen more of Node's modules (readline among them) at every pod start.
const unlink = promisify(unlinkCallback);

/** Server options every listener of the proxy uses (also for a socket inherited from systemd). */
export const LISTENER_OPTIONS: net.ServerOpts = {
  // A client's shutdown(SHUT_WR) is forwarded as FIN; our direction stays open.
  allowHalfOpen: true,
  // Connections accepted before the guest answers wait, unread, until their stream exists.
  pauseOnConnect: true,
};

export class ListenSocketError extends Error {}

/**
 * Creates the listen socket at `socketPath` with exactly `mode` (on `server`, by default a
 * proxy listener). A stale socket file (nothing listening) is replaced; a live one or a path
 * that is not a socket is an error.
 */
export async function listenOnPath<S extends net.Server = net.Server>(
  socketPath: string,
  mode: number,
  server: S = net.createServer(LISTENER_OPTIONS) as S,
): Promise<S> {
  await removeStaleSocket(socketPath);
  mkdirSync(path.dirname(socketPath), { recursive: true, mode: 0o750 });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    // bind() happens synchronously inside listen(): the umask set around it means the socket
    // never exists with wider permissions than `mode`, whatever the process umask is.
    const previous = process.umask(~mode & 0o777);
    try {
      server.listen(socketPath, () => {
        server.off('error', reject);
        resolve();
      });
    } finally {
      process.umask(previous);
    }
  });
  // Metadata calls answered from the inode cache: synchronous, they cost a pod start less than a
  // trip through the thread pool (the host starts pods one after another on its one thread).
  chmodSync(socketPath, mode);
  return server;
}

/** Serves a listening socket inherited by file descriptor (systemd socket activation). */
export function listenOnFd(fd: number, server: net.Server = net.createServer(LISTENER_OPTIONS)): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ fd }, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

/** Removes a socket file nothing listens on (left by a process killed with SIGKILL). */
export async function removeStaleSocket(socketPath: string): Promise<void> {
  const stat = lstatSync(socketPath, { throwIfNoEntry: false });
  if (!stat) return;
  if (!stat.isSocket()) {
    throw new ListenSocketError(`listen socket path ${socketPath} exists and is not a socket`);
  }
  if (await isLive(socketPath)) {
    throw new ListenSocketError(`listen socket ${socketPath} is in use by another process`);
  }
  await unlink(socketPath);
}

/** Whether something accepts connections on this Unix socket path now. */
export function isLive(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.connect(socketPath);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}
