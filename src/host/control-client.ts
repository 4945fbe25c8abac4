import { createRequire } from 'node:module';
import type http from 'node:http';

export interface ControlAnswer {
  status: number;
  body: unknown;
  headers: http.IncomingHttpHeaders;
}

/**
 * One JSON request to the host's control API on its Unix socket (`timeoutMs` 0: no limit, for a
 * PUT that waits for the guest). Rejects with the socket error (err.code).
 */
export function controlRequest(socketPath: string, method: string, path: string, body: unknown, timeoutMs: number): Promise<ControlAnswer> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? '' : JSON.stringify(body);
    // Loaded at first use (see control-server.ts): not on the start path of a per-pod daemon.
    const { request } = createRequire(import.meta.url)('node:http') as typeof http;
    const req = request(
      {
        socketPath,
        method,
        path,
        headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) },
        agent: false,
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            // not JSON: keep the text for the error message
          }
          resolve({ status: res.statusCode ?? 0, body: parsed, headers: res.headers });
        });
      },
    );
    req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
    req.end(payload);
  });
}
