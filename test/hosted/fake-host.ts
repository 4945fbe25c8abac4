// A small real HTTP server on a Unix socket that speaks the host's side of the handle protocol
// (POST /pods?pid=N with the runtime's argv, read by the host's own reader; GET
// /pods/ID/attach?pid=N), so the handles can be tested without the host.
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { commandLineVerdict } from '../../src/cli/hosted-command.js';

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

  private constructor(private readonly server: http.Server) {}

  static async start(socketPath: string): Promise<FakeHost> {
    const host = new FakeHost(http.createServer());
    host.server.on('request', (req, res) => void host.handle(req, res));
    host.server.listen(socketPath);
    await once(host.server, 'listening');
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
    await new Promise((r) => this.server.close(r));
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
      this.posts.push({ pid, argv, env });
      const verdict = commandLineVerdict(argv, env);
      if (verdict.kind === 'usage') {
        res.writeHead(400, { 'Content-Type': 'application/json' }).end(JSON.stringify({ error: verdict.message.split('\n')[0], code: 'usage', usage: verdict.message }));
        return;
      }
      if (verdict.kind === 'not-a-pod') {
        res.writeHead(422, { 'Content-Type': 'application/json' }).end('{"error":"not a pod","code":"not-a-pod"}');
        return;
      }
      const body = verdict.config as unknown as Record<string, unknown>;
      this.puts.push({ id: verdict.id, pid, body });
      await new Promise((r) => setTimeout(r, this.putDelayMs));
      const listener = net.createServer((c) => c.destroy()).listen(String(body.listenSocket));
      await once(listener, 'listening');
      this.podListeners.push(listener);
      const location = `/pods/${encodeURIComponent(verdict.id)}`;
      if (url.searchParams.get('attach') === '1') this.openAttach(verdict.id, pid, req, res, 201, { Location: location });
      else res.writeHead(201, { 'Content-Type': 'application/json', Location: location }).end(JSON.stringify({ id: verdict.id, state: 'connecting', settings: body }));
    } else if (req.method === 'GET' && attach && this.attachStatus !== 200) {
      res.writeHead(this.attachStatus, { 'Content-Type': 'application/json' }).end('{"error":"no such pod","code":"not-found"}');
    } else if (req.method === 'GET' && attach) {
      this.openAttach(decodeURIComponent(attach[1]!), Number(url.searchParams.get('pid')), req, res, 200, {});
    } else {
      res.writeHead(404).end('{"error":"not found","code":"not-found"}');
    }
  }

  /** The attach channel (GET /pods/ID/attach, or the rest of a POST /pods?attach=1). */
  private openAttach(id: string, pid: number, req: http.IncomingMessage, res: http.ServerResponse, status: number, headers: Record<string, string>): void {
    res.useChunkedEncodingByDefault = false;
    res.writeHead(status, { ...headers, 'Content-Type': 'text/plain', Connection: 'close' });
    const a: Attach = {
      id,
      pid,
      closed: new Promise((r) => req.socket.once('close', () => r(Date.now()))),
      end: (code, reason) => res.end(`ended ${code} ${reason}\n`),
      drop: () => req.socket.destroy(),
    };
    // Announced once "attached" is on its way: a test that drops the connection then drops an attached handle.
    res.write('attached\n', () => {
      this.attaches.push(a);
      for (const w of [...this.waiters]) w(a);
    });
  }
}
