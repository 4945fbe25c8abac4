import { UsageError } from './go-flags.js';

/** sun_path holds 108 bytes including the terminating NUL. */
export const MAX_SOCKET_PATH_BYTES = 107;

/** A socket argument is a plain path or a unix:// URI (`unix:///run/vc/sbs/ID/proxy.sock`). */
export function parseSocketArg(flag: string, value: string): string {
  if (value.trim() === '') throw new UsageError(`-${flag}: empty socket path`);
  let socketPath = value;
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(value);
  if (scheme) {
    if (scheme[1]!.toLowerCase() !== 'unix') {
      throw new UsageError(`-${flag}: unsupported scheme "${scheme[1]}" in ${value} (only unix:// or a plain path)`);
    }
    socketPath = value.slice(scheme[0].length);
    if (socketPath === '') throw new UsageError(`-${flag}: ${value} has no path`);
  }
  const bytes = Buffer.byteLength(socketPath);
  if (bytes > MAX_SOCKET_PATH_BYTES) {
    throw new UsageError(`-${flag}: socket path is ${bytes} bytes, longer than the ${MAX_SOCKET_PATH_BYTES} a Unix socket allows`);
  }
  return socketPath;
}
