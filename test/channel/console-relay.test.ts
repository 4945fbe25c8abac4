import { chmodSync, statSync } from 'node:fs';
import net from 'node:net';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { ConsoleRelay } from '../../src/channel/console-relay.js';
import { LineSplitter } from '../../src/channel/line-splitter.js';
import { until } from '../helpers/yamux-pair.js';
import { createTempDir } from '../helpers/tmp.js';
import { perTest } from '../helpers/per-test.js';

const { cleanups } = perTest();

/** A console socket like QEMU's chardev: one client at a time; returns the connected client. */
async function consoleServer(path: string) {
  const clients: net.Socket[] = [];
  const server = net.createServer((s) => {
    s.on('error', () => {});
    clients.push(s);
  });
  await new Promise<void>((r) => server.listen(path, r));
  cleanups.push(() => {
    for (const c of clients) c.destroy();
    return new Promise((r) => server.close(r));
  });
  return { clients, server };
}

function recordingLogger() {
  const records: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (l: string) => void records.push(JSON.parse(l)) });
  return { logger, records };
}

describe('LineSplitter', () => {
  it('splits on LF, strips CR, keeps lines across chunks and cuts over-long lines', () => {
    const lines: [string, boolean][] = [];
    const splitter = new LineSplitter((line, truncated) => lines.push([line, truncated]), 8);
    splitter.push(Buffer.from('ab\r\ncd'));
    splitter.push(Buffer.from('ef\n0123456789abc\n'));
    splitter.push(Buffer.from('tail'));
    splitter.flush();
    expect(lines).toEqual([
      ['ab', false],
      ['cdef', false],
      ['01234567', true],
      ['89abc', false],
      ['tail', false],
    ]);
  });
});

describe('ConsoleRelay', () => {
  it('clears permissions for others, relays lines as agent records and reconnects when the console closes', async () => {
    const dir = createTempDir('kpc');
    cleanups.push(() => dir.cleanup());
    const path = dir.socket('console');
    const { clients } = await consoleServer(path);
    chmodSync(path, 0o777);
    const agent = recordingLogger();
    const own = recordingLogger();
    const relay = new ConsoleRelay({ socketPath: path, agentLog: agent.logger, log: own.logger, retryTimeoutMs: 5000 });
    cleanups.push(() => relay.stop());
    await relay.start();
    expect(statSync(path).mode & 0o777).toBe(0o770);
    expect(own.records.some((r) => String(r.msg).includes('removed permissions for others'))).toBe(true);
    await until(() => clients.length === 1);
    clients[0]!.write('first line\r\nsecond');
    clients[0]!.write(Buffer.concat([Buffer.from(' half\n'), Buffer.from([0xff, 0xfe]), Buffer.from(' invalid utf8\n')]));
    await until(() => agent.records.length === 3);
    expect(agent.records.map((r) => r.msg)).toEqual(['first line', 'second half', '\ufffd\ufffd invalid utf8']);
    clients[0]!.destroy();
    await until(() => clients.length === 2);
    clients[1]!.write('after reconnect\n');
    await until(() => agent.records.length === 4);
    expect(agent.records[3]!.msg).toBe('after reconnect');
  });

  it('rate limit: drops beyond the limit and reports how many', async () => {
    const dir = createTempDir('kpc');
    cleanups.push(() => dir.cleanup());
    const path = dir.socket('console');
    const { clients } = await consoleServer(path);
    const agent = recordingLogger();
    const own = recordingLogger();
    const relay = new ConsoleRelay({ socketPath: path, agentLog: agent.logger, log: own.logger, retryTimeoutMs: 5000, ratePerSecond: 100 });
    cleanups.push(() => relay.stop());
    await relay.start();
    await until(() => clients.length === 1);
    clients[0]!.write(Array.from({ length: 1000 }, (_, i) => `boot line ${i}\n`).join(''));
    await until(() => relay.lines === 1000);
    await until(() => own.records.some((r) => r.msg === 'agent log lines dropped by the rate limit'), 3000);
    const dropped = own.records.filter((r) => r.dropped).reduce((n, r) => n + Number(r.dropped), 0);
    expect(agent.records.length + dropped).toBe(1000);
    expect(agent.records.length).toBeLessThanOrEqual(110);
  });
});
