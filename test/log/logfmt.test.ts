import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { goQuote, logfmtValue } from '../../src/log/go-quote.js';
import { createLoggers } from '../../src/log/logger.js';
import { toLogfmt } from '../../src/log/logfmt.js';
import { parseLogfmt } from '../helpers/logfmt.js';

function capture(format: 'json' | 'logfmt', level: 'debug' | 'info' | 'warn' | 'panic' = 'debug', sandbox = 'sb-1') {
  const lines: string[] = [];
  const loggers = createLoggers({ level, format, sink: 'stderr', sandbox, stderr: { write: (l: string) => lines.push(...l.split('\n').filter(Boolean)) } });
  return { loggers, lines };
}

describe('Go quoting', () => {
  it('leaves values of [A-Za-z0-9-._/@^+] bare and quotes the rest like strconv.Quote', () => {
    expect(logfmtValue('/run/vc/sbs/ID/proxy.sock')).toBe('/run/vc/sbs/ID/proxy.sock');
    expect(logfmtValue('')).toBe('""');
    expect(logfmtValue('a b')).toBe('"a b"');
    expect(goQuote('say "hi"\\\n\t\x00\x7f')).toBe('"say \\"hi\\"\\\\\\n\\t\\x00\\x7f"');
    expect(goQuote('héllo ✓')).toBe('"héllo ✓"');
    expect(goQuote('\u2028\u0085')).toBe('"\\u2028\\u0085"');
  });

  it('property: every string round-trips through quoting and the Kata-rules parser', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (s) => {
        const line = toLogfmt({ time: '2026-11-22T00:00:00.000Z', level: 'info', msg: s, name: 'kata-proxy', pid: 1, source: 'proxy' });
        const parsed = parseLogfmt(line);
        // A lone surrogate is not text; it is escaped and comes back as its code point.
        if (!/[\ud800-\udfff]/u.test(s)) expect(parsed.msg).toBe(s);
        expect(parsed.name).toBe('kata-proxy');
      }),
      { numRuns: 500 },
    );
  });
});

describe('loggers', () => {
  it('logfmt: time, level, msg first, the rest sorted, kata fields on every line, no duplicate keys', () => {
    const { loggers, lines } = capture('logfmt');
    loggers.proxy.info({ zeta: 1, alpha: 'x y' }, 'hello "world"');
    loggers.agent.info('time="2026" level=info msg="nested agent record"');
    loggers.proxy.child({ component: 'yamux' }).warn({ stream: 3 }, 'stream reset');
    expect(lines).toHaveLength(3);
    for (const line of lines) {
      expect(line).toMatch(/^time=\S+ level=\w+ msg=/);
      const r = parseLogfmt(line);
      expect(r.name).toBe('kata-proxy');
      expect(Number(r.pid)).toBe(process.pid);
      expect(r.sandbox).toBe('sb-1');
      expect(Date.parse(r.time!)).not.toBeNaN();
      const keys = line.match(/(?:^| )([\w.-]+)=/g)!.map((k) => k.trim().slice(0, -1)).slice(3);
      expect(keys).toEqual([...keys].sort());
    }
    expect(parseLogfmt(lines[0]!)).toMatchObject({ msg: 'hello "world"', alpha: 'x y', zeta: '1', source: 'proxy', level: 'info' });
    expect(parseLogfmt(lines[1]!)).toMatchObject({ source: 'agent', msg: 'time="2026" level=info msg="nested agent record"' });
    expect(parseLogfmt(lines[2]!)).toMatchObject({ component: 'yamux', level: 'warning', stream: '3', source: 'proxy' });
  });

  it('json: pino records with label levels and each key once', () => {
    const { loggers, lines } = capture('json');
    loggers.agent.info('from the guest');
    loggers.proxy.error({ err: new Error('boom').message }, 'failed');
    for (const line of lines) {
      const keys = [...line.matchAll(/"([^"]+)":/g)].map((m) => m[1]);
      expect(new Set(keys).size).toBe(keys.length);
    }
    expect(JSON.parse(lines[0]!)).toMatchObject({ level: 'info', name: 'kata-proxy', pid: process.pid, source: 'agent', sandbox: 'sb-1', msg: 'from the guest' });
    expect(JSON.parse(lines[1]!)).toMatchObject({ level: 'error', source: 'proxy', err: 'boom' });
  });

  it('filters by level; panic is above fatal', () => {
    const warn = capture('logfmt', 'warn');
    warn.loggers.proxy.info('hidden');
    warn.loggers.proxy.warn('shown');
    expect(warn.lines.map((l) => parseLogfmt(l).msg)).toEqual(['shown']);
    const panic = capture('logfmt', 'panic');
    panic.loggers.proxy.fatal('hidden too');
    expect(panic.lines).toEqual([]);
  });

  it('a missing syslog socket is a warning, never fatal: records go to stderr', () => {
    const lines: string[] = [];
    const loggers = createLoggers({
      level: 'info',
      format: 'logfmt',
      sink: 'syslog',
      syslogSocket: '/nonexistent/dev-log',
      stderr: { write: (l: string) => lines.push(l.trim()) },
    });
    loggers.proxy.info('still logged');
    expect(lines.map((l) => parseLogfmt(l).msg)).toEqual(['syslog unavailable (/nonexistent/dev-log does not exist); logging to stderr', 'still logged']);
    expect(parseLogfmt(lines[0]!).level).toBe('warning');
  });
});
