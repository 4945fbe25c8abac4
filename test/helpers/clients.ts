import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { exchange } from '../../src/sim/workload.js';

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export function connect(path: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ path, allowHalfOpen: true });
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/** Sends `data` on a fresh connection after a service line, half-closes, returns all it reads. */
export function request(path: string, serviceLine: string, data: Buffer = Buffer.alloc(0)): Promise<Buffer> {
  return exchange(path, serviceLine, data);
}

/** A `source` download, hashed as it comes: its digest and length. */
export async function download(path: string, size: number, seed: number): Promise<{ digest: string; bytes: number }> {
  const socket = await connect(path);
  const hash = createHash('sha256');
  let bytes = 0;
  socket.on('data', (c: Buffer) => {
    hash.update(c);
    bytes += c.length;
  });
  socket.end(`source ${size} ${seed}\n`);
  await new Promise((resolve, reject) => {
    socket.once('end', resolve);
    socket.once('error', reject);
  });
  socket.destroy();
  return { digest: hash.digest('hex'), bytes };
}

/** An echo round trip of `size` random bytes; resolves true when every byte came back intact. */
export async function echoChecked(path: string, size: number): Promise<boolean> {
  const data = randomBytes(size);
  const reply = await request(path, 'echo', data);
  return reply.length === size && sha256(reply) === sha256(data);
}
