import { existsSync } from 'node:fs';
import type { Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { SerialPort } from 'serialport';
import { fixSerialPoller } from './serial-poller-fix.js';

export interface SerialOptions {
  /** How long to wait for the device to appear (ms). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/**
 * Opens a tty as the guest channel: raw 8N1 with no flow control (the serialport bindings
 * configure the line raw, so XON/XOFF, CR and ^C bytes pass through untouched), no hang-up on
 * close, and no exclusive lock (so a restart can reopen it at once). Waits for the device to
 * exist, as the Unix-socket channel waits for QEMU.
 */
export async function openSerialChannel(path: string, baudRate: number, options: SerialOptions = {}): Promise<Duplex> {
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  while (!existsSync(path)) {
    options.signal?.throwIfAborted();
    if (Date.now() > deadline) throw new Error(`serial device ${path} did not appear within ${options.timeoutMs ?? 30_000} ms`);
    await sleep(50, undefined, { signal: options.signal });
  }
  const port = new SerialPort({
    path,
    baudRate,
    dataBits: 8,
    stopBits: 1,
    parity: 'none',
    rtscts: false,
    xon: false,
    xoff: false,
    xany: false,
    hupcl: false,
    lock: false,
    autoOpen: false,
  });
  await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
  fixSerialPoller(port);
  return port;
}
