import { chmodSync, linkSync, lstatSync, mkdirSync, unlink as unlinkCallback } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { fdOf } from '../channel/socket-handover.js';

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
  makeDirectory(path.dirname(socketPath));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const listen = () =>
      server.listen(socketPath, () => {
        server.off('error', reject);
        resolve();
      });
    // bind() happens synchronously inside listen(): the umask set around it means the socket
    // never exists with wider permissions than `mode`, whatever the process umask is.
    let previous: number;
    try {
      previous = process.umask(~mode & 0o777);
    } catch {
      // A pod thread, which cannot set the whole process's umask: the host narrowed it at start.
      // (Read and write are what matter: connect() needs write permission.)
      const wider = ~process.umask() & 0o666 & ~mode;
      if (wider !== 0) return reject(new ListenSocketError(`the process umask ${octal(process.umask())} would create ${socketPath} wider than ${octal(mode)}`));
      return listen();
    }
    try {
      listen();
    } finally {
      process.umask(previous);
    }
  });
  // Metadata calls answered from the inode cache: synchronous, they cost a pod start less than a
  // trip through the thread pool (the host starts pods one after another on its one thread).
  chmodSync(socketPath, mode);
  return server;
}

function octal(mode: number): string {
  return mode.toString(8).padStart(4, '0');
}

/** The socket's directory and its missing parents, mode 0750 whatever the umask. */
function makeDirectory(dir: string): void {
  const first = mkdirSync(dir, { recursive: true, mode: 0o750 });
  if (first === undefined) return;
  for (let d = dir; ; d = path.dirname(d)) {
    chmodSync(d, 0o750);
    if (d === first || d === path.dirname(d)) break;
  }
}

/**
 * listenOnPath for a server whose path Node must never remove. A worker thread that ends (as the
 * process exits after a reload) closes its servers, and Node removes the path of a server it
 * bound, though the next host now serves that socket. So the socket is bound at a short
 * temporary name beside the path, served through a copy of its descriptor (`dup`: a server Node
 * did not bind, whose path it leaves alone) and linked at the path; the temporary name goes.
 * Whoever owns the server removes the path when it is done.
 */
export async function listenDetached<S extends net.Server = net.Server>(
  socketPath: string,
  mode: number,
  dup: (fd: number) => number,
  server: S = net.createServer(LISTENER_OPTIONS) as S,
): Promise<S> {
  await removeStaleSocket(socketPath);
  // Short: a socket path has 107 bytes at most, and this one is beside the real one. Random: the
  // threads of one process count apart (and node:crypto is not loaded at a daemon's start).
  const temporary = path.join(path.dirname(socketPath), `.k${Math.random().toString(36).slice(2, 9)}`);
  const binder = await listenOnPath(temporary, mode);
  try {
    const copy = dup(fdOf(binder));
    if (copy < 0) throw new ListenSocketError(`cannot serve ${socketPath}: dup failed (errno ${-copy})`);
    await listenOnFd(copy, server);
    try {
      linkSync(temporary, socketPath);
    } catch (err) {
      server.close();
      const taken = (err as NodeJS.ErrnoException).code === 'EEXIST';
      throw taken ? new ListenSocketError(`listen socket ${socketPath} is in use by another process`) : err;
    }
  } finally {
    binder.close(); // Node removes the temporary name, in this same turn: nothing reached it meanwhile
  }
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
