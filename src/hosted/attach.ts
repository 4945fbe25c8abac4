import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';

const FIRST_RETRY_MS = 50;
const MAX_RETRY_MS = 1000;

/**
 * Holds a pod the host serves, as native/kata-proxy-handle.c does (same protocol, same
 * statuses): `GET podPath/attach?pid=PID`, then wait for "ended STATUS REASON"; re-attach when
 * the connection ends without it (host restart). Resolves with the status to exit with.
 */
export async function holdPod(controlSocket: string, podPath: string, log: Logger): Promise<number> {
  let retryMs = FIRST_RETRY_MS;
  let outageLogged = false;
  for (;;) {
    const r = await attachOnce(controlSocket, podPath);
    if (r.kind === 'ended') return r.status;
    if (r.kind === 'refused') {
      log.error({ podPath, status: r.status }, `attach refused by the host${r.status === 404 ? ' (the host does not know this pod)' : r.status === 409 ? ' (another handle holds this pod)' : ''}`);
      return 1;
    }
    if (r.kind === 'lost' && r.attached) {
      retryMs = FIRST_RETRY_MS;
      outageLogged = false;
    }
    if (!outageLogged) {
      outageLogged = true;
      log.warn({ podPath, controlSocket, err: r.kind === 'lost' ? r.error : `HTTP ${r.status}` }, 'lost the host; re-attaching when it is back');
    }
    await sleep(retryMs);
    retryMs = Math.min(retryMs * 2, MAX_RETRY_MS);
  }
}

type AttachResult =
  | { kind: 'ended'; status: number }
  | { kind: 'refused'; status: number }
  | { kind: 'retry'; status: number }
  | { kind: 'lost'; attached: boolean; error?: string };

function attachOnce(controlSocket: string, podPath: string): Promise<AttachResult> {
  return new Promise((resolve) => {
    const socket = net.connect(controlSocket);
    let received = '';
    let headDone = false;
    let attached = false;
    const finish = (r: AttachResult) => {
      socket.destroy();
      resolve(r);
    };
    socket.on('connect', () => socket.write(`GET ${podPath}/attach?pid=${process.pid} HTTP/1.1\r\nHost: kata-proxy\r\nConnection: close\r\n\r\n`));
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      if (!headDone) {
        const end = received.indexOf('\r\n\r\n');
        if (end < 0) return;
        const status = Number(/^HTTP\/1\.\d (\d{3})/.exec(received)?.[1] ?? 0);
        if (status !== 200) return finish(status >= 500 ? { kind: 'retry', status } : { kind: 'refused', status });
        headDone = true;
        received = received.slice(end + 4);
      }
      for (let nl = received.indexOf('\n'); nl >= 0; nl = received.indexOf('\n')) {
        const line = received.slice(0, nl).replace(/\r$/, '');
        received = received.slice(nl + 1);
        if (line === 'attached') attached = true;
        const ended = /^ended (\d+)/.exec(line);
        if (ended) return finish({ kind: 'ended', status: Number(ended[1]) <= 255 ? Number(ended[1]) : 1 });
      }
    });
    socket.on('error', (err) => finish({ kind: 'lost', attached, error: err.message }));
    socket.on('close', () => finish({ kind: 'lost', attached }));
  });
}
