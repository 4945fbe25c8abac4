import type { Readable } from 'node:stream';
import { Session, type SessionOptions, type YamuxConfig } from '../../src/yamux/index.js';
import { unixSocketPair } from './socket-pair.js';

/** A client and a server session of our engine over a real Unix socket. */
export async function sessionPair(
  clientConfig: Partial<YamuxConfig> = {},
  serverOptions: Partial<SessionOptions> = {},
): Promise<{ client: Session; server: Session; close: () => void }> {
  const pair = await unixSocketPair();
  const client = new Session(pair.a, { role: 'client', config: { enableKeepAlive: false, ...clientConfig } });
  const server = new Session(pair.b, {
    role: 'server',
    ...serverOptions,
    config: { enableKeepAlive: false, ...serverOptions.config },
  });
  return {
    client,
    server,
    close: () => {
      // Streams a test left open fail when their session goes; that is expected here.
      for (const s of [...client.streams(), ...server.streams()]) s.on('error', () => {});
      client.destroy();
      server.destroy();
      pair.close();
    },
  };
}

export function readAll(stream: Readable): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.once('end', () => resolve(Buffer.concat(chunks)));
    stream.once('error', reject);
  });
}

export function once<T = unknown>(emitter: NodeJS.EventEmitter, event: string): Promise<T> {
  return new Promise((resolve) => emitter.once(event, resolve as (v: unknown) => void));
}

export async function until(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}
