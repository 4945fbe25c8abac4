import { constants, existsSync, openSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SerialPort } from 'serialport';
import { gateReads, type PortBinding } from './serial-handover.js';
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
  const { SerialPort: Port, bindings } = serialModules();
  const port = new Port({
    path,
    baudRate,
    ...withBinding({ ...bindings.LinuxBinding, open: async (o: object) => prepared(await bindings.LinuxBinding.open(o)) }),
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
  closeOnDestroy(port);
  return port;
}

/**
 * The tty another process used as this pod's guest channel, opened again as it stands: its
 * settings and both queues belong to the device (serialport's own open would flush them). Throws
 * if the device cannot be opened; the stream is usable at once (it opens in the next tick).
 */
export function reopenSerialChannel(path: string, baudRate: number): Duplex {
  const fd = openSync(path, constants.O_RDWR | constants.O_NOCTTY | constants.O_NONBLOCK);
  const { SerialPort: Port, bindings } = serialModules();
  const port = new Port({
    path,
    baudRate,
    ...withBinding({ ...bindings.LinuxBinding, open: async (o: object) => prepared(new bindings.LinuxPortBinding(fd, o)) }),
  });
  closeOnDestroy(port);
  return port;
}

interface SerialModules {
  SerialPort: typeof import('serialport').SerialPort;
  bindings: {
    LinuxBinding: { open(options: object): Promise<PortBinding> };
    LinuxPortBinding: new (fd: number, options: object) => PortBinding;
  };
}

/** The native add-on loads here, with the first tty, never on the start path of a socket daemon. */
function serialModules(): SerialModules {
  const require = createRequire(import.meta.url);
  const { SerialPort } = require('serialport') as typeof import('serialport');
  const bindings = createRequire(require.resolve('serialport'))('@serialport/bindings-cpp') as SerialModules['bindings'];
  return { SerialPort, bindings };
}

/** serialport's stream takes its binding as an option its SerialPort type leaves out. */
function withBinding(binding: object): object {
  return { binding };
}

/** A port binding just opened, before the stream reads from it. */
function prepared(binding: PortBinding): PortBinding {
  fixSerialPoller(binding);
  return gateReads(binding);
}

/**
 * serialport's stream has no _destroy: destroy() leaves the tty open and its poller armed for the
 * read in progress, so the event loop never empties and a stopped daemon never exits. Here
 * destroy() closes the port, and so does the end of the writable side once everything written
 * has left (a tty has no half-close: a channel whose writer has ended is done).
 */
function closeOnDestroy(port: SerialPort): void {
  port._destroy = (err: Error | null, callback: (err?: Error | null) => void) => {
    // The binding's own close: the stream's close() would emit a second 'close'.
    if (!port.isOpen || !port.port) return callback(err);
    port.port.close().then(
      () => callback(err),
      () => callback(err),
    );
  };
  port.once('finish', () => port.destroy());
}
