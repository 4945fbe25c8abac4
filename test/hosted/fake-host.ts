// A small real HTTP server on a Unix socket that speaks the host's side of the handle protocol
// (PUT /pods/ID, GET /pods/ID/attach?pid=N), so the handles can be tested without the host.
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';

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
    const put = /^\/pods\/([^/]+)$/.exec(url.pathname);
    const attach = /^\/pods\/([^/]+)\/attach$/.exec(url.pathname);
    if (req.method === 'PUT' && put) {
      let text = '';
      for await (const chunk of req) text += String(chunk);
      const body = JSON.parse(text) as Record<string, unknown>;
      this.puts.push({ id: decodeURIComponent(put[1]!), pid: Number(url.searchParams.get('pid')), body });
      await new Promise((r) => setTimeout(r, this.putDelayMs));
      const listener = net.createServer((c) => c.destroy()).listen(String(body.listenSocket));
      await once(listener, 'listening');
      this.podListeners.push(listener);
      res.writeHead(201, { 'Content-Type': 'application/json' }).end(JSON.stringify({ id: put[1], state: 'connecting', settings: body }));
    } else if (req.method === 'GET' && attach && this.attachStatus !== 200) {
      res.writeHead(this.attachStatus, { 'Content-Type': 'application/json' }).end('{"error":"no such pod","code":"not-found"}');
    } else if (req.method === 'GET' && attach) {
      res.useChunkedEncodingByDefault = false;
      res.writeHead(200, { 'Content-Type': 'text/plain', Connection: 'close' });
      res.write('attached\n');
      const a: Attach = {
        id: decodeURIComponent(attach[1]!),
        pid: Number(url.searchParams.get('pid')),
        closed: new Promise((r) => req.socket.once('close', () => r(Date.now()))),
        end: (status, reason) => res.end(`ended ${status} ${reason}\n`),
        drop: () => req.socket.destroy(),
      };
      this.attaches.push(a);
      for (const w of [...this.waiters]) w(a);
    } else {
      res.writeHead(404).end('{"error":"not found","code":"not-found"}');
    }
  }
}
