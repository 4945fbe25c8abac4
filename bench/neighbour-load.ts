// What the neighbours of a busy or hostile pod do in the bench's "neighbours" section: steady,
// light traffic whose latency is the figure (a shim's round trip every 10 ms on its long-lived
// connection, and now and then a checked echo of a few MiB), and what a client of the hostile
// pod does (connections opened as fast as they end, whatever the guest does to them).
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { ChurnResult, Job, NeighboursResult, Target } from './protocol.js';
import type { Connector } from './workloads.js';

type NeighboursJob = Extract<Job, { type: 'neighbours' }>;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Every neighbour at once for `durationMs`, one part of their load: paced round trips on one
 * connection each, or echoes on connections of their own.
 */
export async function neighbours(connector: Connector, job: NeighboursJob): Promise<NeighboursResult> {
  const result: NeighboursResult = { samplesUs: [], echoesMs: [], errors: [] };
  // Made before the window (4 MiB of random bytes is milliseconds of a loop), one per neighbour:
  // bytes that reach the wrong connection do not compare equal.
  const data = job.part === 'echoes' ? job.targets.map(() => randomBytes(job.echoBytes)) : null;
  const deadline = performance.now() + job.durationMs;
  await Promise.all(
    job.targets.map((target, i) =>
      data
        ? // Staggered, so that the neighbours' echoes do not all fall in the same instant.
          echoes(connector, target, job, data[i]!, deadline, (i * job.echoEveryMs) / job.targets.length, result)
        : pacedRoundTrips(connector, target, job, deadline, result),
    ),
  );
  return result;
}

async function pacedRoundTrips(connector: Connector, target: Target, job: NeighboursJob, deadline: number, out: NeighboursResult): Promise<void> {
  const d = await (await connector.opener(target))();
  const payload = Buffer.alloc(job.size, 0x61);
  let got = 0;
  let wake: (() => void) | null = null;
  let failure: string | null = null;
  d.on('data', (c: Buffer) => {
    got += c.length;
    if (got >= job.size) wake?.();
  });
  d.once('error', (err) => {
    failure = `round trip: ${err.message}`;
    wake?.();
  });
  d.once('end', () => {
    failure ??= 'round trip: EOF from the proxy';
    wake?.();
  });
  d.write('echo\n');
  let next = performance.now();
  while (performance.now() < deadline && !failure) {
    const t0 = performance.now();
    got = 0;
    await new Promise<void>((resolve) => {
      wake = resolve;
      d.write(payload);
    });
    wake = null;
    if (failure) break;
    out.samplesUs.push((performance.now() - t0) * 1000);
    next += job.intervalMs;
    const wait = next - performance.now();
    if (wait > 0) await sleep(wait);
    else next = performance.now(); // late: no catching up in a burst
  }
  if (failure) out.errors.push(failure);
  d.destroy();
}

async function echoes(connector: Connector, target: Target, job: NeighboursJob, data: Buffer, deadline: number, offsetMs: number, out: NeighboursResult): Promise<void> {
  await sleep(offsetMs);
  const open = await connector.opener(target);
  for (let n = 0; performance.now() + job.echoEveryMs / 2 < deadline; n++) {
    data.writeUInt32BE(n); // and an echo's bytes differ from the one before
    const t0 = performance.now();
    try {
      const back = await echo(await open(), data);
      if (!back.equals(data)) out.errors.push(`echo: ${back.length} of ${data.length} bytes, or wrong bytes`);
      else out.echoesMs.push(performance.now() - t0);
    } catch (err) {
      out.errors.push(`echo: ${(err as Error).message}`);
    }
    await sleep(job.echoEveryMs);
  }
}

/**
 * `echo N` and N bytes; the guest ends its side once it has sent them back. Ours stays open until
 * then: the Go proxy's design closes both directions as soon as either ends (no half-close).
 */
function echo(d: Duplex, data: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    d.on('data', (c: Buffer) => chunks.push(c));
    d.once('error', reject);
    d.once('end', () => {
      d.end();
      resolve(Buffer.concat(chunks));
    });
    d.write(`echo ${data.length}\n`);
    d.write(data);
  });
}

/** `clients` loops of connect, request, wait for the end (answer, EOF or reset), for `durationMs`. */
export async function churn(connector: Connector, target: Target, clients: number, size: number, durationMs: number): Promise<ChurnResult> {
  const open = await connector.opener(target);
  const result: ChurnResult = { connections: 0, outcomes: {} };
  const count = (o: string) => (result.outcomes[o] = (result.outcomes[o] ?? 0) + 1);
  const request = Buffer.concat([Buffer.from(`echo ${size}\n`), Buffer.alloc(size, 0x63)]);
  const deadline = performance.now() + durationMs;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (performance.now() < deadline) {
        result.connections++;
        try {
          const d = await open();
          count(await oneExchange(d, request, size));
        } catch (err) {
          count((err as NodeJS.ErrnoException).code ?? 'connect failed');
          await sleep(1);
        }
      }
    }),
  );
  return result;
}

function oneExchange(d: Duplex, request: Buffer, size: number): Promise<string> {
  return new Promise((resolve) => {
    let got = 0;
    d.on('data', (c: Buffer) => (got += c.length));
    d.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
    d.once('close', () => resolve(got >= size ? 'answered' : 'eof'));
    d.once('end', () => d.end());
    d.write(request);
  });
}
