// A small real server on a Unix socket that speaks the host's side of the handle protocols (the
// native handle's registration frame, and HTTP: POST /pods?pid=N with the runtime's argv, GET
// /pods/ID/attach?pid=N), the command line read by the host's own reader, so the handles can be
// tested without the host.
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { commandLineVerdict } from '../../src/cli/hosted-command.js';
import type { CommandLineVerdict } from '../../src/host/pod-registry.js';
import { isRegistrationFrame, parseRegistrationFrame } from '../../src/host/native-registration.js';

export interface Attach {
  id: string;
  pid: number;
  /** Date.now() when the handle's side closed the connection. */
  closed: Promise<number>;
  /** The pod ended: "ended STATUS REASON", then close (as the host does). */
  end(status: number, reason: string): void;
  /** The connection breaks without an "ended" line (as when the host dies). */
  drop(): void;
}

export class FakeHost {
  /** The command lines the handles sent (POST /pods). */
  readonly posts: { pid: number; argv: string[]; env: Record<string, string> }[] = [];
  /** The pods registered: what the host would PUT. */
  readonly puts: { id: string; pid: number; body: Record<string, unknown> }[] = [];
  readonly attaches: Attach[] = [];
  /** Status to answer attaches with instead of 200 (404: pod unknown). */
  attachStatus = 200;
  /** Delay before a PUT is answered. */
  putDelayMs = 0;
  private readonly podListeners: net.Server[] = [];
  private waiters: ((a: Attach) => void)[] = [];

  private readonly frames = new Set<net.Socket>();

  private constructor(
    private readonly front: net.Server,
    private readonly server: http.Server,
  ) {}

  static async start(socketPath: string): Promise<FakeHost> {
    const host = new FakeHost(net.createServer(), http.createServer());
    host.server.on('request', (req, res) => void host.handle(req, res));
    // As the host does: a first byte NUL is a native handle's frame, anything else HTTP.
    host.front.on('connection', (socket) =>
      socket.once('readable', () => {
        const first = socket.read() as Buffer | null;
        if (first && isRegistrationFrame(first)) return void host.handleFrame(socket, first);
        if (first) socket.unshift(first);
        host.server.emit('connection', socket);
      }),
    );
    host.server.emit('listening');
    host.front.listen(socketPath);
    await once(host.front, 'listening');
    return host;
  }

  /** The next attach (or the n-th one, counting from 1, if it already came). */
  attach(n = this.attaches.length + 1): Promise<Attach> {
    const seen = this.attaches[n - 1];
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => {
      const waiter = (a: Attach) => {
        if (this.attaches.length < n) return;
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve(a);
      };
      this.waiters.push(waiter);
    });
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    for (const socket of this.frames) socket.destroy();
    await new Promise((r) => this.front.close(r));
    await Promise.all(this.podListeners.map((l) => new Promise((r) => l.close(r))));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://host');
    const attach = /^\/pods\/([^/]+)\/attach$/.exec(url.pathname);
    if (req.method === 'POST' && url.pathname === '/pods') {
      let text = '';
      for await (const chunk of req) text += String(chunk);
      const { argv, env } = JSON.parse(text) as { argv: string[]; env: Record<string, string> };
      const pid = Number(url.searchParams.get('pid'));
      const verdict = await this.register(pid, argv, env);
      if (verdict.kind === 'usage') {
        res.writeHead(400, { 'Content-Type': 'application/json' }).end(JSON.stringify({ error: verdict.message.split('\n')[0], code: 'usage', usage: verdict.message }));
        return;
      }
      if (verdict.kind === 'not-a-pod') {
        res.writeHead(422, { 'Content-Type': 'application/json' }).end('{"error":"not a pod","code":"not-a-pod"}');
        return;
      }
      const location = `/pods/${encodeURIComponent(verdict.id)}`;
      if (url.searchParams.get('attach') === '1') this.openAttach(verdict.id, pid, req, res, 201, { Location: location });
      else res.writeHead(201, { 'Content-Type': 'application/json', Location: location }).end(JSON.stringify({ id: verdict.id, state: 'connecting', settings: verdict.config }));
    } else if (req.method === 'GET' && attach && this.attachStatus !== 200) {
      res.writeHead(this.attachStatus, { 'Content-Type': 'application/json' }).end('{"error":"no such pod","code":"not-found"}');
    } else if (req.method === 'GET' && attach) {
      this.openAttach(decodeURIComponent(attach[1]!), Number(url.searchParams.get('pid')), req, res, 200, {});
    } else {
      res.writeHead(404).end('{"error":"not found","code":"not-found"}');
    }
  }

  /** What the host does with a handle's command line: reads it, and for a pod, listens on its socket. */
  private async register(pid: number, argv: string[], env: Record<string, string>): Promise<CommandLineVerdict> {
    this.posts.push({ pid, argv, env });
    const verdict = commandLineVerdict(argv, env);
    if (verdict.kind !== 'pod') return verdict;
    const body = verdict.config as unknown as Record<string, unknown>;
    this.puts.push({ id: verdict.id, pid, body });
    await new Promise((r) => setTimeout(r, this.putDelayMs));
    const listener = net.createServer((c) => c.destroy()).listen(String(body.listenSocket));
    await once(listener, 'listening');
    this.podListeners.push(listener);
    return verdict;
  }

  /** The native handle's frame (src/host/native-registration.ts); the connection goes on as the attach channel. */
  private async handleFrame(socket: net.Socket, first: Buffer): Promise<void> {
    this.frames.add(socket);
    socket.on('error', () => {});
    socket.once('close', () => this.frames.delete(socket));
    let buf = first;
    let frame = parseRegistrationFrame(buf);
    while (!frame) {
      const [chunk] = (await once(socket, 'data')) as [Buffer];
      buf = Buffer.concat([buf, chunk]);
      frame = parseRegistrationFrame(buf);
    }
    socket.resume();
    const verdict = await this.register(frame.pid, frame.argv, frame.env);
    if (verdict.kind === 'usage') return void socket.end(`usage\n${verdict.message}`);
    if (verdict.kind === 'not-a-pod') return void socket.end('not-a-pod\n');
    this.announceAttach(verdict.id, frame.pid, socket, (line, then) => socket.write(line, then), (line) => socket.end(line), `pod /pods/${encodeURIComponent(verdict.id)}\n`);
  }

  /** The attach channel (GET /pods/ID/attach, or the rest of a POST /pods?attach=1). */
  private openAttach(id: string, pid: number, req: http.IncomingMessage, res: http.ServerResponse, status: number, headers: Record<string, string>): void {
    res.useChunkedEncodingByDefault = false;
    res.writeHead(status, { ...headers, 'Content-Type': 'text/plain', Connection: 'close' });
    this.announceAttach(id, pid, req.socket, (line, then) => res.write(line, then), (line) => res.end(line));
  }

  private announceAttach(id: string, pid: number, socket: net.Socket, write: (line: string, then: () => void) => void, end: (line: string) => void, head = ''): void {
    const a: Attach = {
      id,
      pid,
      closed: new Promise((r) => socket.once('close', () => r(Date.now()))),
      end: (code, reason) => end(`ended ${code} ${reason}\n`),
      drop: () => socket.destroy(),
    };
    // Announced once "attached" is on its way: a test that drops the connection then drops an attached handle.
    write(`${head}attached\n`, () => {
      this.attaches.push(a);
      for (const w of [...this.waiters]) w(a);
    });
  }
}
