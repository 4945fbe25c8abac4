import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';

export interface WorkloadResult {
  streams: number;
  bytes: number;
  seconds: number;
  checksumsOk: number;
  checksumsBad: number;
  latencyMs: { p50: number; p99: number; samples: number };
}

/** Client side of the simulated guest's services, through the proxy's listen socket. */
export async function runWorkload(listenPath: string, opts = { clients: 32, bytesPerClient: 1 << 20, pings: 500 }): Promise<WorkloadResult> {
  const started = process.hrtime.bigint();
  const outcomes = await Promise.all(
    Array.from({ length: opts.clients }, (_, i) =>
      i % 2 === 0 ? echoRoundTrip(listenPath, opts.bytesPerClient) : sinkChecked(listenPath, opts.bytesPerClient),
    ),
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const latencies = await pingPong(listenPath, opts.pings);
  const ok = outcomes.filter(Boolean).length;
  return {
    streams: opts.clients + 1,
    bytes: opts.clients * opts.bytesPerClient * 2,
    seconds,
    checksumsOk: ok,
    checksumsBad: outcomes.length - ok,
    latencyMs: { p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), samples: latencies.length },
  };
}

function digest(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** One connection: the service line and `body`, then half-close; resolves with all it reads. */
export function exchange(listenPath: string, head: string, body: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ path: listenPath, allowHalfOpen: true });
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.once('end', () => {
      socket.end();
      resolve(Buffer.concat(chunks));
    });
    socket.once('error', reject);
    socket.write(`${head}\n`);
    socket.end(body);
  });
}

async function echoRoundTrip(listenPath: string, size: number): Promise<boolean> {
  const data = randomBytes(size);
  return digest(await exchange(listenPath, 'echo', data)) === digest(data);
}

async function sinkChecked(listenPath: string, size: number): Promise<boolean> {
  const data = randomBytes(size);
  const reply = (await exchange(listenPath, 'sink', data)).toString().trim();
  return reply === `${digest(data)} ${size}`;
}

/** 64-byte request/response round trips over one long-lived connection, as a shim does. */
async function pingPong(listenPath: string, count: number): Promise<number[]> {
  const socket = net.connect({ path: listenPath });
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  socket.write('echo\n');
  const message = Buffer.alloc(64, 0x61);
  const samples: number[] = [];
  let received = 0;
  let sentAt = 0n;
  await new Promise<void>((resolve, reject) => {
    const next = () => {
      if (samples.length === count) return resolve();
      sentAt = process.hrtime.bigint();
      socket.write(message);
    };
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received >= message.length) {
        received -= message.length;
        samples.push(Number(process.hrtime.bigint() - sentAt) / 1e6);
        next();
      }
    });
    socket.once('error', reject);
    next();
  });
  socket.destroy();
  return samples;
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}
