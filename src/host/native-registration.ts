// The native per-pod handle's registration (native/kata-proxy-handle.c) on the control socket,
// without HTTP: a pod start is the host's most frequent request, and Node's HTTP server was about
// a fifth of what the host spent on one. A connection whose first byte is NUL (never the first byte of an
// HTTP request) carries one frame of NUL-terminated fields:
//
//   "" "kata-proxy-register 1" PID ARGC ARG... NAME=VALUE... ""
//
// (the runtime's argv as the handle got it, then the environment variables it depends on). The
// answer is lines: "pod /pods/ID" and then the attach channel ("attached", later "ended STATUS
// REASON"), as `POST /pods?pid=N&attach=1` would send in its body; or one refusal, after which
// the host closes the connection: "usage" and the daemon's usage message to the end, "not-a-pod",
// or "refused STATUS CODE MESSAGE".
import type net from 'node:net';
import type { Logger } from 'pino';
import type { CommandLineReader, PodRegistry } from './pod-registry.js';
import { HostError } from './host-error.js';
import { registerCommandLine } from './pod-registration.js';
import { socketAttachLink } from './socket-attach-link.js';

const VERSION_FIELD = 'kata-proxy-register 1';
const MAX_FRAME_BYTES = 64 * 1024;
/** A handle sends its frame at once: a connection still short of one after this is dropped. */
const FRAME_TIMEOUT_MS = 10_000;

export interface RegistrationFrame {
  pid: number;
  argv: string[];
  env: Record<string, string>;
}

/** Whether a control connection's first bytes are a native handle's frame. */
export function isRegistrationFrame(first: Buffer): boolean {
  return first.length > 0 && first[0] === 0;
}

/** The frame in `buf`; null while it is incomplete. Throws a HostError (400) on a malformed one. */
export function parseRegistrationFrame(buf: Buffer): RegistrationFrame | null {
  const fields: string[] = [];
  let at = 1;
  const field = (): string | null => {
    const end = buf.indexOf(0, at);
    if (end < 0) return null;
    const text = buf.toString('utf8', at, end);
    at = end + 1;
    return text;
  };
  const bad = (why: string) => new HostError(400, 'bad-frame', `registration frame: ${why}`);
  for (let i = 0; i < 3; i++) {
    const f = field();
    if (f === null) return null;
    fields.push(f);
  }
  const [version, pidText, argcText] = fields as [string, string, string];
  if (version !== VERSION_FIELD) throw bad(`expected "${VERSION_FIELD}", got "${version.slice(0, 40)}"`);
  const pid = Number(pidText);
  const argc = Number(argcText);
  if (!Number.isInteger(pid) || pid <= 0) throw bad('the pid must be a positive integer');
  if (!Number.isInteger(argc) || argc < 0) throw bad('the argument count must be a number');
  const argv: string[] = [];
  for (let i = 0; i < argc; i++) {
    const arg = field();
    if (arg === null) return null;
    argv.push(arg);
  }
  const env: Record<string, string> = {};
  for (;;) {
    const pair = field();
    if (pair === null) return null;
    if (pair === '') break;
    const eq = pair.indexOf('=');
    if (eq <= 0) throw bad(`"${pair.slice(0, 40)}" is not NAME=VALUE`);
    env[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  if (at !== buf.length) throw bad('bytes after the end of the frame');
  return { pid, argv, env };
}

/**
 * Serves one native handle's registration on `socket`, whose first bytes (`first`) are already
 * read: the pod is created as `POST /pods?pid=N&attach=1` creates it, and the connection goes on
 * as its attach channel.
 */
export function serveRegistration(socket: net.Socket, first: Buffer, registry: PodRegistry, read: CommandLineReader, log: Logger): void {
  const refuse = (err: unknown) => {
    const e = err instanceof HostError ? err : new HostError(500, 'internal', (err as Error).message ?? String(err));
    if (!(err instanceof HostError)) log.error({ err: e.message, stack: (err as Error).stack }, 'native registration failed');
    const usage = e.extra?.usage;
    if (e.code === 'usage' && typeof usage === 'string') socket.end(`usage\n${usage}`);
    else if (e.code === 'not-a-pod') socket.end('not-a-pod\n');
    else socket.end(`refused ${e.status} ${e.code} ${e.message.replace(/\n/g, ' ')}\n`);
  };
  const register = async ({ pid, argv, env }: RegistrationFrame) => {
    try {
      const { id } = await registerCommandLine(registry, read, argv, env, pid);
      if (!registry.attach) throw new HostError(405, 'read-only', 'this control socket is read-only (a per-pod daemon)');
      await registry.attach(id, pid, socketAttachLink(socket, `pod /pods/${encodeURIComponent(id)}\n`));
    } catch (err) {
      if (!socket.destroyed) refuse(err);
    }
  };
  /** Whether `buf` holds the whole frame (then served or refused). */
  const served = (buf: Buffer): boolean => {
    let frame: RegistrationFrame | null;
    try {
      if (buf.length > MAX_FRAME_BYTES) throw new HostError(413, 'frame-too-large', `the frame is larger than ${MAX_FRAME_BYTES} bytes`);
      frame = parseRegistrationFrame(buf);
    } catch (err) {
      refuse(err);
      return true;
    }
    if (frame) void register(frame);
    return frame !== null;
  };
  socket.on('error', () => {});
  // A handle writes its frame at once: it is nearly always whole in the first read.
  if (served(first)) return;
  let buf = first;
  const timer = setTimeout(() => socket.destroy(), FRAME_TIMEOUT_MS);
  const onData = (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    if (!served(buf)) return;
    clearTimeout(timer);
    socket.off('data', onData);
  };
  socket.on('data', onData);
}
