// A pod moved to another process without its guest or clients noticing: every socket passes as a
// descriptor, the rest as one JSON document (PodState). See src/host/handover.ts for the protocol.
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { isGatedSerial } from '../channel/serial-handover.js';
import { reopenSerialChannel } from '../channel/serial.js';
import { resumeReading, unreadBytes, whenFlushed } from '../channel/socket-handover.js';
import { checkSnapshot, type GoAwayCode, type SessionSnapshot } from '../yamux/index.js';
import type { ConsoleRelayState } from '../channel/console-relay.js';
import { LISTENER_OPTIONS } from './listener.js';
import { Pod, type PodOptions, type PodParts } from './pod.js';

/** Bumped on any change the previous reader would misread; readers refuse versions they do not know. */
export const POD_STATE_VERSION = 1;

/**
 * Sockets are indexes into the handles that travel beside the state, in order. A tty channel
 * has no handle (null): the next process opens the pod's device again.
 */
export interface PodState {
  version: typeof POD_STATE_VERSION;
  createdAt: number;
  server: number;
  channel: { handle: number | null; unread: string };
  session: SessionSnapshot;
  served: number;
  refused: number;
  guestGoAway: GoAwayCode | null;
  clients: { handle: number; streamId: number | null; unread: string }[];
  console: { handle: number | null; state: ConsoleRelayState } | null;
}

export type Handle = net.Socket | net.Server;

export interface PodCapture {
  state: PodState;
  handles: Handle[];
}

export class PodStateError extends Error {}

/**
 * Stops the pod (reading at every handle, the session's writer and timers) and waits up to
 * `flushBoundMs` for what it wrote to reach the kernel; then takes its state. A pod that cannot
 * move now (not serving, a guest or client that does not read) is resumed and the reason
 * returned instead.
 */
export async function capturePod(pod: Pod, flushBoundMs: number): Promise<PodCapture | { refused: string }> {
  const first = pod.suspend();
  if (!first) return { refused: 'the pod is not serving' };
  const channel = first.proxy.channel;
  if (!(channel instanceof net.Socket) && !isGatedSerial(channel)) {
    pod.resume();
    return { refused: 'this guest channel cannot be passed to another process' };
  }
  // A tty read that completed as reading stopped lands in the stream's buffer by the next turn.
  if (!(channel instanceof net.Socket)) await new Promise((r) => setImmediate(r));
  const streams: Duplex[] = [channel, ...first.proxy.clients.map((c) => c.socket)];
  if (!(await whenFlushed(streams, flushBoundMs))) {
    pod.resume();
    return { refused: `the guest or a client did not read what was written to it within ${flushBoundMs} ms` };
  }
  return describe(pod.parts());
}

function describe(parts: PodParts): PodCapture {
  const handles: Handle[] = [];
  const add = (h: Handle): number => handles.push(h) - 1;
  const channel = parts.proxy.channel;
  const consoleSocket = parts.console?.socket ?? null;
  const state: PodState = {
    version: POD_STATE_VERSION,
    createdAt: parts.createdAt,
    server: add(parts.server),
    channel: { handle: channel instanceof net.Socket ? add(channel) : null, unread: unreadBytes(channel).toString('base64') },
    session: parts.proxy.session,
    served: parts.proxy.served,
    refused: parts.proxy.refused,
    guestGoAway: parts.proxy.guestGoAway,
    clients: parts.proxy.clients
      .filter((c) => !c.socket.destroyed)
      .map((c) => ({ handle: add(c.socket), streamId: c.streamId, unread: unreadBytes(c.socket).toString('base64') })),
    console: parts.console ? { handle: consoleSocket ? add(consoleSocket) : null, state: parts.console.state } : null,
  };
  return { state, handles };
}

/** Refuses a state this version cannot read, before anything is built from it. */
export function checkPodState(value: unknown): PodState {
  const s = value as Partial<PodState> | null;
  if (typeof s !== 'object' || s === null) throw new PodStateError('pod state is not an object');
  if (s.version !== POD_STATE_VERSION) {
    throw new PodStateError(`pod state version ${String(s.version)} is not supported (this version reads ${POD_STATE_VERSION})`);
  }
  checkSnapshot(s.session);
  return s as PodState;
}

/**
 * A socket as another process left it: its unread bytes first, half-close as the proxy uses it,
 * and reading started again at the handle (stopped on arrival; Node's Readable still believes a
 * read is posted, so it would not start it by itself).
 */
export function prepareSocket(socket: net.Socket, unread = ''): net.Socket {
  socket.allowHalfOpen = true;
  if (unread) socket.unshift(Buffer.from(unread, 'base64'));
  resumeReading(socket);
  return socket;
}

/** A listen socket passed by another process: connections wait unread, half-close kept, as LISTENER_OPTIONS. */
export function prepareServer(server: net.Server): net.Server {
  const s = server as net.Server & { allowHalfOpen: boolean; pauseOnConnect: boolean };
  s.allowHalfOpen = true;
  s.pauseOnConnect = true;
  return server;
}

/** The pod again, in this process, from the state and the handles that came with it. */
export function adoptPod(options: PodOptions, value: unknown, handles: readonly (Handle | undefined)[]): Pod {
  const state = checkPodState(value);
  const socket = (i: number): net.Socket => {
    const h = handles[i];
    if (!(h instanceof net.Socket)) throw new PodStateError(`socket ${i} of the pod did not arrive`);
    return h;
  };
  const server = handles[state.server];
  if (!(server instanceof net.Server)) throw new PodStateError('the listen socket of the pod did not arrive');
  const parts: PodParts = {
    createdAt: state.createdAt,
    server: prepareServer(server),
    proxy: {
      channel: state.channel.handle === null ? reopenedDevice(options, state.channel.unread) : prepareSocket(socket(state.channel.handle), state.channel.unread),
      session: state.session,
      served: state.served,
      refused: state.refused,
      guestGoAway: state.guestGoAway,
      clients: state.clients.map((c) => ({ socket: prepareSocket(socket(c.handle), c.unread), streamId: c.streamId })),
    },
    console: state.console
      ? { socket: state.console.handle === null ? null : prepareSocket(socket(state.console.handle)), state: state.console.state }
      : null,
  };
  return Pod.adopt(options, parts);
}

/** The pod's tty, opened again in this process, its unread bytes first. */
function reopenedDevice(options: PodOptions, unread: string): Duplex {
  const device = options.settings.muxDevice;
  if (!device) throw new PodStateError('the pod state has no channel socket and the pod no device');
  const port = reopenSerialChannel(device.path, device.baudRate);
  if (unread) port.unshift(Buffer.from(unread, 'base64'));
  return port;
}

/**
 * A descriptor this thread now owns (inherited at start, or passed from another thread), as the
 * object the pod expects; a socket starts reading at once, its pod takes it in the same turn.
 */
export function handleFromFd(fd: number, server: boolean): Handle {
  if (server) return net.createServer(LISTENER_OPTIONS).listen({ fd });
  return new net.Socket({ fd, readable: true, writable: true, allowHalfOpen: true });
}
