import type http from 'node:http';
import { createRequire } from 'node:module';
import net from 'node:net';
import type { Logger } from 'pino';
import { listenOnPath } from '../proxy/listener.js';
import { parsePodId, podConfigFromJson, SettingsError, type PodConfig } from '../proxy/pod-settings.js';
import { HostError } from './host-error.js';
import { METRICS_CONTENT_TYPE, renderMetrics } from './metrics.js';
import { isRegistrationFrame, serveRegistration } from './native-registration.js';
import { registerCommandLine } from './pod-registration.js';
import type { CommandLineReader, PodRegistry } from './pod-registry.js';
import type { AttachLink } from './host.js';

export type { CommandLineReader, CommandLineVerdict, PodRegistry } from './pod-registry.js';

export interface ControlServer {
  /** The listening socket (a reload hands it to the next host). */
  readonly server: net.Server;
  close(): Promise<void>;
  /** Another process serves the socket now: idle keep-alive connections close, answers say Connection: close. */
  handOff(): void;
}

/** Operations of the process rather than of its pods. */
export interface HostOperations {
  /** POST /upgrade: a reload (see src/host/handover.ts); its report. */
  upgrade?(): Promise<object>;
  /** POST /pods?pid=N: a pod from a per-pod handle's argv, read by the daemon's own option code. */
  readCommandLine?: CommandLineReader;
}

const MAX_BODY_BYTES = 64 * 1024;
const POD_PATH = /^\/pods\/([^/]+)(\/attach|\/move)?$/;

/**
 * The control API: HTTP/1.1 with JSON on a Unix socket (mode 0600) or on a socket systemd passed.
 * Every refusal is a 4xx/5xx with {"error", "code"} and changes nothing. With `readCommandLine`
 * in `operations` (the host), `POST /pods?pid=N` registers a pod from the Kata runtime's argv as a native
 * per-pod handle got it, read by the daemon's own option code.
 */
export async function serveControl(
  registry: PodRegistry,
  where: { path: string } | { fd: number } | { server: net.Server },
  log: Logger,
  operations: HostOperations = {},
): Promise<ControlServer> {
  // Loaded here, not at module load: node:http (undici, tls and http2 with it on Node 22+) costs a
  // per-pod daemon tens of ms of start-up, and only -control-socket needs it.
  const { createServer } = createRequire(import.meta.url)('node:http') as typeof http;
  let handedOff = false;
  const server = createServer({ headersTimeout: 10_000, requestTimeout: 30_000, keepAliveTimeout: 5_000 }, (req, res) => {
    if (handedOff || req.url === '/upgrade') res.setHeader('Connection', 'close');
    route(registry, operations, req, res).catch((err: unknown) => {
      if (!(err instanceof HostError)) log.error({ err: (err as Error).message, stack: (err as Error).stack }, 'control request failed');
      sendError(res, err);
    });
  });
  // A native handle's registration comes without HTTP (native-registration.ts): the first bytes
  // of a connection tell which it is.
  const read = operations.readCommandLine;
  const accept = (socket: net.Socket) =>
    firstBytes(socket, (first) => {
      if (read && isRegistrationFrame(first)) return serveRegistration(socket, first, registry, read, log);
      socket.unshift(first);
      server.emit('connection', socket);
    });
  // The HTTP server never listens itself: 'listening' starts its connection tracking (header and
  // request timeouts, closeAllConnections) as listen() would.
  server.emit('listening');
  let listening: net.Server;
  if ('server' in where) {
    // Passed by the previous host (a reload): its connections are served here.
    listening = where.server;
    listening.on('connection', accept);
  } else {
    listening = net.createServer(accept);
    if ('fd' in where) await new Promise<void>((resolve, reject) => listening.once('error', reject).listen({ fd: where.fd }, resolve));
    else await listenOnPath(where.path, 0o600, listening);
  }
  return {
    server: listening,
    handOff: () => {
      handedOff = true;
      server.closeIdleConnections();
    },
    close: () =>
      new Promise<void>((resolve) => {
        listening.close();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function route(registry: PodRegistry, operations: HostOperations, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const readCommandLine = operations.readCommandLine;
  const url = new URL(req.url ?? '/', 'http://control');
  const method = req.method ?? 'GET';
  if (url.pathname === '/upgrade') {
    allow(method, ['POST']);
    if (!operations.upgrade) throw new HostError(405, 'read-only', 'this process cannot be upgraded in place');
    return sendJson(res, 200, await operations.upgrade());
  }
  if (url.pathname === '/pods') {
    allow(method, readCommandLine ? ['GET', 'POST'] : ['GET']);
    if (method === 'POST') return registerPosted(registry, readCommandLine!, url, req, res);
    return sendJson(res, 200, { pods: await registry.list() });
  }
  if (url.pathname === '/metrics') {
    allow(method, ['GET']);
    const text = renderMetrics(await registry.list(), registry.hostStats?.());
    res.writeHead(200, { 'Content-Type': METRICS_CONTENT_TYPE, 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
    return;
  }
  const match = POD_PATH.exec(url.pathname);
  if (!match) throw new HostError(404, 'not-found', `no such endpoint: ${url.pathname}`);
  const id = podIdOf(match[1]!);
  if (match[2] === '/move') {
    allow(method, ['POST']);
    const to = url.searchParams.has('thread') ? Number(url.searchParams.get('thread')) : undefined;
    if (to !== undefined && !(Number.isInteger(to) && to > 0)) throw new HostError(400, 'bad-query', 'thread must be a pod thread number (1, 2, ...)');
    return sendJson(res, 200, await writable(registry.move).call(registry, id, to));
  }
  if (match[2]) {
    allow(method, ['GET']);
    return attach(registry, id, url, res);
  }
  allow(method, ['GET', 'PUT', 'DELETE']);
  if (method === 'GET') {
    const pod = await registry.get(id);
    if (!pod) throw new HostError(404, 'unknown-pod', `no pod ${id}`);
    return sendJson(res, 200, pod);
  }
  if (method === 'DELETE') return sendJson(res, 200, await writable(registry.remove).call(registry, id));
  const config = configOf(await readBody(req));
  const wait = url.searchParams.get('wait');
  if (wait !== null && wait !== 'serving') throw new HostError(400, 'bad-query', `wait must be "serving"`);
  // The per-pod handle that will attach (issue 10) is named at once: if it dies before it
  // attaches, its pod goes with it instead of living on with nobody to remove it.
  const handlePid = url.searchParams.has('pid') ? pidOf(url) : undefined;
  const { status, pod } = await writable(registry.put).call(registry, id, config, {
    waitServing: wait === 'serving',
    ...(handlePid !== undefined ? { handlePid } : {}),
  });
  return sendJson(res, status, pod);
}

/**
 * `POST /pods?pid=N` with `{"argv": [...], "env": {...}}`: the pod of that command line
 * (pod-registration.ts), 201 or 200 with `Location: /pods/ID`; with `&attach=1` the answer goes on
 * as `GET /pods/ID/attach?pid=N` does.
 */
async function registerPosted(registry: PodRegistry, read: CommandLineReader, url: URL, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const { argv, env } = commandLineOf(await readBody(req));
  const handlePid = pidOf(url);
  const attachToo = url.searchParams.get('attach');
  if (attachToo !== null && attachToo !== '1') throw new HostError(400, 'bad-query', 'attach must be "1"');
  const { status, id, pod } = await registerCommandLine(registry, read, argv, env, handlePid);
  const location = `/pods/${encodeURIComponent(id)}`;
  // With attach=1 this connection goes on as the pod's attach channel: one round trip per pod start.
  if (attachToo) return attachOn(registry, id, handlePid, res, status, { Location: location });
  res.setHeader('Location', location);
  return sendJson(res, status, pod);
}

function commandLineOf(body: Buffer): { argv: string[]; env: Record<string, string> } {
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new HostError(400, 'malformed-json', `the body is not JSON: ${(err as Error).message}`);
  }
  const bad = (why: string) => new HostError(400, 'bad-command-line', why);
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw bad('the body must be {"argv": [...], "env": {...}}');
  const { argv, env = {}, ...rest } = json as Record<string, unknown>;
  const unknown = Object.keys(rest)[0];
  if (unknown !== undefined) throw new HostError(400, 'unknown-field', `unknown field "${unknown}"`);
  if (!Array.isArray(argv) || !argv.every((a) => typeof a === 'string')) throw bad('argv must be an array of strings');
  if (typeof env !== 'object' || env === null || Array.isArray(env) || !Object.values(env).every((v) => typeof v === 'string')) {
    throw bad('env must be an object of strings');
  }
  return { argv: argv as string[], env: env as Record<string, string> };
}

function pidOf(url: URL): number {
  const pid = Number(url.searchParams.get('pid'));
  if (!Number.isInteger(pid) || pid <= 0) throw new HostError(400, 'bad-pid', 'pid must be a positive integer');
  return pid;
}

function attach(registry: PodRegistry, id: string, url: URL, res: http.ServerResponse): Promise<void> {
  return attachOn(registry, id, pidOf(url), res, 200, {});
}

/** The attach channel on `res`: a head with `status` once the host accepts it, then lines. */
async function attachOn(registry: PodRegistry, id: string, pid: number, res: http.ServerResponse, status: number, headers: Record<string, string>): Promise<void> {
  let headed = false;
  let closedByUs = false;
  const link: AttachLink = {
    get socket() {
      return res.socket ?? undefined;
    },
    release() {
      closedByUs = true;
      return res.socket;
    },
    send(line) {
      if (!headed) {
        // No length and no chunked encoding: the body is a stream of lines until the connection closes.
        res.sendDate = false;
        res.useChunkedEncodingByDefault = false;
        res.writeHead(status, { ...headers, 'Content-Type': 'text/plain', Connection: 'close' });
        headed = true;
      }
      res.write(line);
    },
    close() {
      closedByUs = true;
      res.end();
    },
    onClose(listener) {
      const left = () => {
        if (!closedByUs) listener();
      };
      // The handle may have gone while its attach waited behind another operation on the pod.
      if (res.destroyed) queueMicrotask(left);
      else res.once('close', left);
    },
  };
  await writable(registry.attach).call(registry, id, pid, link);
}

function configOf(body: Buffer): PodConfig {
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new HostError(400, 'malformed-json', `the body is not JSON: ${(err as Error).message}`);
  }
  try {
    return podConfigFromJson(json);
  } catch (err) {
    if (err instanceof SettingsError) {
      throw new HostError(400, err.message.startsWith('unknown field') ? 'unknown-field' : 'bad-settings', err.message);
    }
    throw err;
  }
}

function podIdOf(raw: string): string {
  try {
    return parsePodId(decodeURIComponent(raw));
  } catch {
    throw new HostError(400, 'bad-id', `invalid pod id "${raw}"`);
  }
}

function allow(method: string, methods: string[]): void {
  if (!methods.includes(method)) throw new HostError(405, 'method-not-allowed', `${method} is not allowed here (${methods.join(', ')})`);
}

function writable<F>(op: F | undefined): F {
  if (!op) throw new HostError(405, 'read-only', 'this control socket is read-only (a per-pod daemon)');
  return op;
}

function readBody(req: http.IncomingMessage): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) return Promise.reject(tooLarge());
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        req.removeAllListeners('data');
        req.resume();
        reject(tooLarge());
      } else parts.push(chunk);
    });
    req.once('end', () => resolve(Buffer.concat(parts)));
    req.once('error', reject);
  });
}

function tooLarge(): HostError {
  return new HostError(413, 'body-too-large', `the body is larger than ${MAX_BODY_BYTES} bytes`);
}

function sendJson(res: http.ServerResponse, status: number, value: unknown): void {
  const body = `${JSON.stringify(value)}\n`;
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

function sendError(res: http.ServerResponse, err: unknown): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const e = err instanceof HostError ? err : new HostError(500, 'internal', (err as Error).message ?? String(err));
  if (e.status === 413) res.setHeader('Connection', 'close');
  sendJson(res, e.status, { error: e.message, code: e.code, ...(e.pod ? { pod: e.pod } : {}), ...e.extra });
}

/** A connection that sends nothing is dropped after this, as the HTTP server drops one without headers. */
const FIRST_BYTES_TIMEOUT_MS = 10_000;

/** Calls `then` with the first bytes `socket` sends (paused mode: they can be unshifted for HTTP). */
function firstBytes(socket: net.Socket, then: (first: Buffer) => void): void {
  socket.on('error', () => socket.destroy());
  socket.setTimeout(FIRST_BYTES_TIMEOUT_MS, () => socket.destroy());
  socket.once('readable', () => {
    const first = socket.read() as Buffer | null;
    socket.setTimeout(0);
    if (first === null) socket.destroy();
    else then(first);
  });
}
