import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** Two ends of a real Unix-socket connection, and a cleanup. */
export async function unixSocketPair(): Promise<{ a: net.Socket; b: net.Socket; close: () => void }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kp-pair-'));
  const socketPath = path.join(dir, 's');
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  const a = net.connect(socketPath);
  await new Promise<void>((resolve, reject) => a.once('connect', resolve).once('error', reject));
  const b = await accepted;
  server.close();
  return {
    a,
    b,
    close: () => {
      a.destroy();
      b.destroy();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
