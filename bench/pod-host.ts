// Many pods in one process: the per-pod core (src/proxy/proxy.ts) as a multi-pod host would run
// it, each pod with its own listen socket, guest channel, yamux session, heartbeat and child
// logger under one shared root logger. The bench measures what one more pod costs.
//   node <launcher flags> dist/bench/pod-host.js <dir>
// stdin, one line each: "add <n>" starts pods <count>..<count+n-1> (listen <dir>/p<i>.sock, guest
// <dir>/g<i>.sock) and prints {"event":"pods","count":<total>} once all of them serve.
// Prints {"event":"ready"} at start; exits on SIGTERM or when stdin closes.
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { connectWithRetry } from '../src/channel/unix-socket.js';
import { createLoggers } from '../src/log/logger.js';
import { listenOnPath } from '../src/proxy/listener.js';
import { Proxy } from '../src/proxy/proxy.js';

const dir = process.argv[2];
if (!dir) {
  process.stderr.write('usage: pod-host.js <dir>\n');
  process.exit(2);
}
const root = createLoggers({ level: 'warn', format: 'logfmt', sink: 'stderr' });
const pods: Proxy[] = [];
const say = (event: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(event)}\n`);

async function startPod(i: number): Promise<Proxy> {
  const mux = join(dir!, `g${i}.sock`);
  const server = await listenOnPath(join(dir!, `p${i}.sock`), 0o660);
  const proxy = new Proxy({
    server,
    logger: root.proxy.child({ sandbox: `pod-${i}` }),
    openGuestChannel: (signal) => connectWithRetry(mux, { timeoutMs: 10_000, signal }),
  });
  await proxy.start();
  return proxy;
}

createInterface({ input: process.stdin }).on('line', (line) => {
  const [cmd, arg] = line.trim().split(/\s+/);
  if (cmd !== 'add') return;
  const first = pods.length;
  const n = Number(arg);
  void Promise.all(Array.from({ length: n }, (_, k) => startPod(first + k))).then(
    (added) => {
      pods.push(...added);
      say({ event: 'pods', count: pods.length });
    },
    (err: Error) => say({ event: 'error', message: err.message }),
  );
});
process.stdin.on('end', () => process.exit(0));
process.on('SIGTERM', () => {
  setTimeout(() => process.exit(0), 1000).unref();
  void Promise.all(pods.map((p) => p.stop())).then(() => process.exit(0));
});
say({ event: 'ready', pid: process.pid });
