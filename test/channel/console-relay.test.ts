import { chmodSync, statSync } from 'node:fs';
import { spawn } from 'node:child_process';
import net from 'node:net';
import fc from 'fast-check';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { ConsoleRelay, type ConsoleRelayOptions } from '../../src/channel/console-relay.js';
import { LineSplitter } from '../../src/channel/line-splitter.js';
import { until } from '../helpers/yamux-pair.js';
import { createTempDir } from '../helpers/tmp.js';
import { perTest } from '../helpers/per-test.js';

const { cleanups } = perTest();

/** A console socket that accepts every client (QEMU's serves one at a time: ONE_CLIENT_AT_A_TIME); returns them. */
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

/** A relay started on a fresh console socket, connected; its records kept. */
async function relayOnConsole(options: Pick<ConsoleRelayOptions, 'ratePerSecond' | 'shedding' | 'silentReportMs'>) {
  const dir = createTempDir('kpc');
  cleanups.push(() => dir.cleanup());
  const path = dir.socket('console');
  const { clients } = await consoleServer(path);
  const agent = recordingLogger();
  const own = recordingLogger();
  const relay = new ConsoleRelay({ socketPath: path, agentLog: agent.logger, log: own.logger, retryTimeoutMs: 5000, ...options });
  cleanups.push(() => relay.stop());
  await relay.start();
  await until(() => clients.length === 1);
  return { clients, agent, own, relay };
}

function recordingLogger() {
  const records: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (l: string) => void records.push(JSON.parse(l)) });
  return { logger, records };
}

describe('LineSplitter', () => {
  it('splits on LF, strips CR, keeps lines across chunks and cuts over-long lines', () => {
    const lines: [string, boolean][] = [];
    const splitter = new LineSplitter((line, truncated) => lines.push([line.toString(), truncated]), 8);
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

  it('skip: counts the lines a chunk completes (the one in progress among them) and keeps what follows', () => {
    const lines: string[] = [];
    const splitter = new LineSplitter((line) => lines.push(line.toString()), 8);
    splitter.push(Buffer.from('ab\ncd'));
    expect(splitter.skip(Buffer.from('ef\ngh\nij'))).toBe(2); // "cdef" and "gh"
    expect(splitter.skip(Buffer.from('k'))).toBe(0);
    splitter.push(Buffer.from('l\nmn\n'));
    expect(lines).toEqual(['ab', 'ijkl', 'mn']);
  });

  it('property: however the bytes are chunked, lines are cut at the limit and CRs stripped the same way', () => {
    const bytes = fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a.map((b) => [0x0a, 0x0d, 0x61, b][b % 4]!)));
    fc.assert(
      fc.property(bytes, fc.array(fc.nat(300)), fc.integer({ min: 1, max: 12 }), (input, cuts, max) => {
        const expected: [string, boolean][] = [];
        const pieces = (line: Buffer) => {
          let rest = line;
          for (; rest.length > max; rest = rest.subarray(max)) expected.push([stripCr(rest.subarray(0, max)), true]);
          expected.push([stripCr(rest), false]);
        };
        const lines = input.toString('latin1').split('\n');
        const last = lines.pop()!;
        for (const l of lines) pieces(Buffer.from(l, 'latin1'));
        if (last.length > 0) pieces(Buffer.from(last, 'latin1'));

        const got: [string, boolean][] = [];
        const splitter = new LineSplitter((line, truncated) => got.push([line.toString('latin1'), truncated]), max);
        const at = [...new Set(cuts.map((c) => c % (input.length + 1)))].sort((a, b) => a - b);
        let from = 0;
        for (const c of [...at, input.length]) {
          const chunk = Buffer.from(input.subarray(from, c));
          splitter.push(chunk);
          chunk.fill(0x5a); // as the relay's one read buffer is: the splitter must not keep the caller's bytes
          from = c;
        }
        splitter.flush();
        expect(got).toEqual(expected);
      }),
      { numRuns: 2000 },
    );
  });
});

function stripCr(b: Buffer): string {
  return (b.at(-1) === 0x0d ? b.subarray(0, -1) : b).toString('latin1');
}

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

  it('while the log refuses every line, lines are only counted as dropped but the last, which is relayed once the log takes lines again', async () => {
    let refusing = true;
    let dropped = 0;
    const shedding = { active: () => refusing, count: (n: number) => (dropped += n) };
    const { clients, agent, relay } = await relayOnConsole({ shedding });
    clients[0]!.write(Array.from({ length: 5000 }, (_, i) => `flood line ${i}\n`).join('') + 'half');
    await until(() => relay.lines === 5000);
    expect(dropped).toBe(4999);
    expect(agent.records).toEqual([]);
    // The console goes quiet: the line that ended the flood is not lost with it.
    refusing = false;
    await until(() => agent.records.length === 1);
    expect(agent.records[0]!.msg).toBe('flood line 4999');
    clients[0]!.write(' a line\nnext\n');
    await until(() => agent.records.length === 3);
    expect(agent.records.map((r) => r.msg)).toEqual(['flood line 4999', 'half a line', 'next']);
    expect(dropped).toBe(4999);
  });

  it('a flood while the log refuses: every line is relayed or counted, and a line after it is relayed', async () => {
    let refusing = true;
    let dropped = 0;
    const shedding = { active: () => refusing, count: (n: number) => (dropped += n) };
    const { clients, agent, relay } = await relayOnConsole({ shedding });
    for (let burst = 0; burst < 20; burst++) {
      clients[0]!.write(Array.from({ length: 1000 }, (_, i) => `burst ${burst} line ${i}\n`).join(''));
      await until(() => relay.lines === (burst + 1) * 1000);
    }
    clients[0]!.write('after the flood: panic\n');
    await until(() => relay.lines === 20_001);
    refusing = false;
    await until(() => agent.records.length === 1);
    expect(agent.records.map((r) => r.msg)).toEqual(['after the flood: panic']);
    expect(dropped + agent.records.length).toBe(20_001);
  });

  it('a console that closes as soon as it is opened is reopened once a second, not in a loop', async () => {
    const dir = createTempDir('kpc');
    cleanups.push(() => dir.cleanup());
    const path = dir.socket('console');
    let connections = 0;
    const server = net.createServer((c) => {
      connections++;
      c.on('error', () => {});
      c.end('boot line\n');
    });
    await new Promise<void>((r) => server.listen(path, r));
    cleanups.push(() => new Promise((r) => server.close(r)));
    const agent = recordingLogger();
    const relay = new ConsoleRelay({ socketPath: path, agentLog: agent.logger, log: recordingLogger().logger, retryTimeoutMs: 5000 });
    cleanups.push(() => relay.stop());
    await relay.start();
    await new Promise((r) => setTimeout(r, 2500));
    expect(connections).toBeGreaterThanOrEqual(2);
    expect(connections).toBeLessThanOrEqual(4);
    expect(agent.records.filter((r) => r.msg === 'boot line').length).toBe(connections);
  });

  it('rate limit: drops beyond the limit and reports how many', async () => {
    const { clients, agent, own, relay } = await relayOnConsole({ ratePerSecond: 100 });
    clients[0]!.write(Array.from({ length: 1000 }, (_, i) => `boot line ${i}\n`).join(''));
    await until(() => relay.lines === 1000);
    await until(() => own.records.some((r) => r.msg === 'agent log lines dropped by the rate limit'), 3000);
    const dropped = own.records.filter((r) => r.dropped).reduce((n, r) => n + Number(r.dropped), 0);
    expect(agent.records.length + dropped).toBe(1000);
    expect(agent.records.length).toBeLessThanOrEqual(110);
  });

  it("a console another client holds (QEMU serves one at a time): the relay says so once, and relays as soon as that client goes", async () => {
    const dir = createTempDir('kpc');
    cleanups.push(() => dir.cleanup());
    const path = dir.socket('console');
    // QEMU's chardev, as char-socket.c has it: while a client is connected it accepts no other;
    // the next waits in the listen backlog, connected as far as it can tell.
    const chardev = spawn('python3', ['-c', ONE_CLIENT_AT_A_TIME, path], { stdio: ['ignore', 'pipe', 'inherit'] });
    cleanups.push(() => void chardev.kill());
    // Its output is read whole: one print may arrive in several pieces.
    let said = '';
    chardev.stdout.on('data', (d: Buffer) => (said += d.toString()));
    await until(() => said.includes('listening\n'), 10_000);
    const holder = net.connect(path); // a debug console left open, say
    holder.on('error', () => {});
    cleanups.push(() => void holder.destroy());
    await until(() => said.includes('accepted 1\n'), 10_000);

    const agent = recordingLogger();
    const own = recordingLogger();
    const relay = new ConsoleRelay({ socketPath: path, agentLog: agent.logger, log: own.logger, retryTimeoutMs: 5000, silentReportMs: 200 });
    cleanups.push(() => relay.stop());
    await relay.start();
    const silent = () => own.records.filter((r) => String(r.msg).startsWith('nothing received from the guest console'));
    await until(() => silent().length === 1, 10_000);
    expect(silent()[0]).toMatchObject({ level: 40, console: path, silentSeconds: 0.2 });
    expect(agent.records).toEqual([]);

    holder.destroy();
    await until(() => agent.records.some((r) => r.msg === 'after the holder left'), 10_000);
    await until(() => said.includes('accepted 2\n'), 10_000); // the relay's was the second connection it served
    expect(silent()).toHaveLength(1);
  });

  it('a console that speaks is not reported silent', async () => {
    const { clients, agent, own } = await relayOnConsole({ silentReportMs: 100 });
    clients[0]!.write('boot line\n');
    await until(() => agent.records.length === 1);
    await new Promise((r) => setTimeout(r, 300)); // past the report's time
    expect(own.records.filter((r) => String(r.msg).startsWith('nothing received'))).toEqual([]);
  });
});

/** Listens on argv[1] and serves one client at a time, as QEMU's chardev does; the second is greeted with a line. */
const ONE_CLIENT_AT_A_TIME = `
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1])
s.listen(8)
print('listening', flush=True)
n = 0
while True:
    c, _ = s.accept()
    n += 1
    print('accepted', n, flush=True)
    if n > 1:
        c.sendall(b'after the holder left\\n')
    while c.recv(4096):
        pass
    c.close()
`;
