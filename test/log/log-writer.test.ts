// The bounded log writer on real pipes: a FIFO whose reader lags (in this process), and a child
// process whose stderr is not read until it has exited.
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, constants, openSync, readSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FdSink } from '../../src/log/fd-sink.js';
import { LogWriter, type DropReport } from '../../src/log/log-writer.js';
import { openSyslog, SyslogSink } from '../../src/log/syslog-sink.js';
import { REPO_ROOT } from '../helpers/go-peer.js';
import { perTest } from '../helpers/per-test.js';
import { until } from '../helpers/yamux-pair.js';

const t = perTest('kplw');
const { cleanups } = t;

/** A FIFO with both ends open and non-blocking: nothing is read until the test reads. */
function fifo() {
  const path = t.tmp.file('fifo');
  execFileSync('mkfifo', [path]);
  const reader = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  const writer = openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);
  cleanups.push(() => [reader, writer].forEach((fd) => closeSync(fd)));
  const buf = Buffer.alloc(1 << 20);
  let text = '';
  /** Reads what is there now. */
  const read = () => {
    for (;;) {
      try {
        const n = readSync(reader, buf);
        if (n === 0) return text;
        text += buf.toString('utf8', 0, n);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return text;
        throw err;
      }
    }
  };
  return { reader, writer, read };
}

const line = (tag: string, i: number) => `${tag} ${String(i).padStart(4, '0')} ${'.'.repeat(88)}\n`;

describe('LogWriter on a pipe that is not read', () => {
  it('keeps the order, drops the newest agent lines first, keeps room for its own records and counts every drop', async () => {
    const pipe = fifo();
    const writer = new LogWriter(new FdSink(pipe.writer), { budgetBytes: 64 * 1024, reportIntervalMs: 50 });
    const reports: DropReport[] = [];
    writer.reportDropsTo((r) => {
      reports.push(r);
      writer.write(`summary ${r.dropped} ${r.agentLines} ${r.reason}\n`, 4, 'proxy');
    });
    const log = (text: string, priority: 'agent' | 'proxy') => writer.admit(priority, text.length) && writer.write(text, 6, priority);
    for (let i = 0; i < 2000; i++) log(line('agent', i), 'agent');
    for (let i = 0; i < 100; i++) log(line('proxy', i), 'proxy');
    expect(writer.pending).toBeLessThanOrEqual(64 * 1024);
    await until(() => reports.length > 0, 2000);

    // The reader catches up: the queue goes out through the sink's retries.
    await until(() => pipe.read().includes('summary'), 5000);
    const lines = pipe.read().trimEnd().split('\n');
    const agent = lines.filter((l) => l.startsWith('agent'));
    const proxy = lines.filter((l) => l.startsWith('proxy'));
    expect(agent).toEqual(Array.from({ length: agent.length }, (_, i) => line('agent', i).trimEnd()));
    expect(proxy).toEqual(Array.from({ length: 100 }, (_, i) => line('proxy', i).trimEnd()));
    expect(lines.indexOf(proxy[0]!)).toBeGreaterThan(lines.indexOf(agent.at(-1)!));
    const dropped = 2000 - agent.length;
    expect(reports).toEqual([{ reason: 'sink slow', dropped, agentLines: dropped }]);
    expect(lines.at(-1)).toBe(`summary ${dropped} ${dropped} sink slow`);
    expect(writer.unreported).toEqual([]);
  });

  it('one console fills at most its share of the queue: another console\'s lines still get in', () => {
    const pipe = fifo();
    const writer = new LogWriter(new FdSink(pipe.writer), { budgetBytes: 64 * 1024, agentShare: 0.75, ownerShare: 0.25 });
    const console = (owner: string, i: number) => {
      const text = line(owner, i);
      if (!writer.admit('agent', text.length, owner)) return false;
      writer.write(text, 6, 'agent');
      return true;
    };
    // Fill the pipe, then the flooding console's share of the queue.
    while (writer.pending === 0) console('flood', 0);
    let flooded = 0;
    while (console('flood', flooded)) flooded++;
    expect(writer.pending).toBeLessThanOrEqual(64 * 1024 * 0.75 * 0.25 + 200);
    expect(writer.refuses('agent', 256, 'flood')).toBe(true);
    expect(writer.refuses('agent', 256, 'quiet')).toBe(false);
    for (let i = 0; i < 10; i++) expect(console('quiet', i)).toBe(true);
    // Once the reader catches up, the flooding console's share is free again.
    for (let i = 0; i < 100 && writer.pending > 0; i++) {
      pipe.read();
      writer.flushSync(50);
    }
    expect(writer.refuses('agent', 256, 'flood')).toBe(false);
    expect(pipe.read()).toContain(line('quiet', 9).trimEnd());
  });

  it('refuses() says ahead whether agent lines would be dropped, counting nothing; dropped() counts them in bulk', () => {
    const pipe = fifo();
    const writer = new LogWriter(new FdSink(pipe.writer), { budgetBytes: 64 * 1024 });
    expect(writer.refuses('agent', 256)).toBe(false);
    for (let i = 0; writer.admit('agent', 100); i++) writer.write(line('agent', i), 6, 'agent');
    expect(writer.unreported).toEqual([{ reason: 'sink slow', dropped: 1, agentLines: 1 }]);
    expect(writer.refuses('agent', 256)).toBe(true);
    expect(writer.refuses('proxy', 256)).toBe(false); // the daemon's own records keep their share
    writer.dropped('agent', 5000);
    expect(writer.unreported).toEqual([{ reason: 'sink slow', dropped: 5001, agentLines: 5001 }]);
  });

  it('a record that cannot be written at all (no reader: EPIPE) is counted as a sink error', () => {
    const pipe = fifo();
    closeSync(pipe.reader);
    cleanups.splice(-1, 1, () => closeSync(pipe.writer));
    const writer = new LogWriter(new FdSink(pipe.writer));
    writer.write('lost\n', 6, 'proxy');
    writer.write('lost too\n', 6, 'agent');
    expect(writer.unreported).toEqual([{ reason: 'sink error', dropped: 2, agentLines: 1 }]);
  });
});

describe('flush at exit', () => {
  it('a process whose stderr is full writes its last records out before it exits', async () => {
    const script = join(t.tmp.path, 'child.mjs');
    writeFileSync(
      script,
      `import { createLoggers } from ${JSON.stringify(join(REPO_ROOT, 'dist', 'src', 'log', 'logger.js'))};
       const loggers = createLoggers({ level: 'info', format: 'json', sink: 'stderr' });
       for (let i = 0; i < 5000; i++) loggers.agent.info('console line ' + i + ' ' + '.'.repeat(400));
       loggers.proxy.fatal('the last record');
       loggers.writer.flushSync(10_000);
       process.exit(1);`,
    );
    const child = spawn(process.execPath, [script], { stdio: ['ignore', 'ignore', 'pipe'] });
    cleanups.push(() => child.exitCode === null && child.kill('SIGKILL'));
    child.stderr.pause();
    // Nothing is read for a while: the child is stuck in its flush, not lost.
    await new Promise((r) => setTimeout(r, 300));
    expect(child.exitCode).toBe(null);
    let text = '';
    child.stderr.on('data', (c: Buffer) => (text += c.toString())).resume();
    const code = await new Promise((r) => child.once('close', r));
    const records = text.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(code).toBe(1);
    const agent = records.filter((r) => r.source === 'agent');
    expect(agent.map((r) => r.msg)).toEqual(agent.map((_, i) => `console line ${i} ${'.'.repeat(400)}`));
    const last = records.findIndex((r) => r.msg === 'the last record');
    expect(records[last]).toMatchObject({ level: 'fatal', source: 'proxy', name: 'kata-proxy' });
    expect(records.slice(last + 1)).toEqual([
      expect.objectContaining({ msg: 'log records dropped', level: 'warn', reason: 'sink slow', dropped: 5000 - agent.length }),
    ]);
  });
});

describe('syslog sink', () => {
  it('keeps at most 256 KiB in the thread pool: the rest waits in the writer and goes as syslog(3) returns', async () => {
    const path = t.tmp.file('dev-log'); // openSyslog only checks that it exists; syslog(3) uses /dev/log
    writeFileSync(path, '');
    const sink = openSyslog(path);
    if (!(sink instanceof SyslogSink)) return expect(sink).toMatch(/modern-syslog/); // the native module is optional
    const writer = new LogWriter(sink, { budgetBytes: 4 << 20 });
    let peak = 0;
    for (let i = 0; i < 2000; i++) {
      writer.write(`${'x'.repeat(1000)} ${i}\n`, 6, 'proxy');
      peak = Math.max(peak, sink.held);
    }
    expect(peak).toBeLessThanOrEqual(256 * 1024 + 1010);
    expect(writer.pending).toBeGreaterThan(1 << 20);
    await writer.flush(20_000);
    expect(writer.pending).toBe(0);
    expect(writer.unreported).toEqual([]);
  });
});
