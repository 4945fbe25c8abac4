import { describe, expect, it } from 'vitest';
import { parseCommandLine, type DaemonOptions } from '../../src/cli/command-line.js';

const RUNTIME_ARGV = [
  '-listen-socket', 'unix:///run/vc/sbs/ID/proxy.sock',
  '-mux-socket', '/run/vc/vm/ID/kata.sock',
  '-sandbox', 'ID',
  '-log', 'debug',
  '-agent-logs-socket', '/run/vc/vm/ID/console.sock',
];

function daemon(argv: string[]): DaemonOptions {
  const parsed = parseCommandLine(argv);
  if (parsed.kind !== 'daemon') throw new Error(`expected daemon, got ${JSON.stringify(parsed)}`);
  return parsed.options;
}

function exitOf(argv: string[]) {
  const parsed = parseCommandLine(argv);
  if (parsed.kind !== 'exit') throw new Error(`expected exit, got ${parsed.kind}`);
  return parsed;
}

describe('command line', () => {
  it("takes the Kata 1.x runtime's exact argv", () => {
    expect(daemon(RUNTIME_ARGV)).toMatchObject({
      listenSocket: '/run/vc/sbs/ID/proxy.sock',
      muxSocket: '/run/vc/vm/ID/kata.sock',
      sandbox: 'ID',
      logLevel: 'debug',
      agentLogsSocket: '/run/vc/vm/ID/console.sock',
      logFormat: 'logfmt',
      retryTimeoutMs: 30_000,
      listenMode: 0o660,
    });
  });

  it('accepts every Go flag form and the GNU long forms alike', () => {
    const forms = [
      ['-listen-socket', '/a', '-mux-socket', '/b'],
      ['-listen-socket=/a', '-mux-socket=/b'],
      ['--listen-socket', '/a', '--mux-socket', '/b'],
      ['--listen-socket=/a', '--mux-socket=/b'],
      ['-listen-socket', 'unix:///a', '--mux-socket=unix:///b'],
    ];
    for (const argv of forms) expect(daemon(argv)).toMatchObject({ listenSocket: '/a', muxSocket: '/b' });
  });

  it('reads Go booleans: -debug, -debug=true, -debug=false', () => {
    const base = ['-listen-socket', '/a', '-mux-socket', '/b'];
    expect(daemon([...base, '-debug'])).toMatchObject({ debug: true, logLevel: 'debug' });
    expect(daemon([...base, '-debug=true', '-log', 'error'])).toMatchObject({ debug: true, logLevel: 'error' });
    expect(daemon([...base, '-debug=false'])).toMatchObject({ debug: false, logLevel: 'warn' });
    expect(exitOf([...base, '-debug=maybe']).code).toBe(2);
  });

  it('prints "kata-proxy version <semver>" for -version and --version, exit 0', () => {
    for (const flag of ['-version', '--version']) {
      const r = exitOf([flag]);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^kata-proxy version \S+\n$/);
      const last = r.stdout!.trim().split(/\s+/).pop()!;
      expect(last).toMatch(/^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$/);
    }
  });

  it('--help and -h print usage that mentions the Go-style flags, exit 0', () => {
    for (const flag of ['--help', '-help', '-h']) {
      const r = exitOf([flag]);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/-listen-socket/);
      expect(r.stdout).toMatch(/single-dash/);
    }
  });

  it('rejects other schemes, empty values and over-long socket paths with status 2', () => {
    const cases: [string[], RegExp][] = [
      [['-listen-socket', 'tcp://1.2.3.4:5', '-mux-socket', '/b'], /unsupported scheme "tcp"/],
      [['-listen-socket', 'vsock://3:1024', '-mux-socket', '/b'], /unsupported scheme "vsock"/],
      [['-listen-socket', '', '-mux-socket', '/b'], /empty/],
      [['-listen-socket', 'unix://', '-mux-socket', '/b'], /no path/],
      [['-listen-socket', '/a', '-mux-socket', `/${'x'.repeat(107)}`], /108 bytes/],
      [['-listen-socket', '/a', '-mux-socket', '/b', '-agent-logs-socket', ''], /empty/],
    ];
    for (const [argv, message] of cases) {
      const r = exitOf(argv);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
    }
    // 107 bytes is the most a sun_path holds; multi-byte characters count as bytes.
    expect(daemon(['-listen-socket', `/${'x'.repeat(106)}`, '-mux-socket', '/b']).listenSocket).toHaveLength(107);
    expect(exitOf(['-listen-socket', `/${'é'.repeat(54)}`, '-mux-socket', '/b']).code).toBe(2);
  });

  it('missing required flags: usage on stderr, status 2', () => {
    for (const argv of [[], ['-mux-socket', '/b'], ['-listen-socket', '/a']]) {
      const r = exitOf(argv);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/missing required flag/);
      expect(r.stderr).toMatch(/Usage:/);
    }
  });

  it('unknown flags are errors, not a bundle of single letters', () => {
    const r = exitOf(['-listen-socket', '/a', '-mux-socket', '/b', '-bogus']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/flag provided but not defined: -bogus/);
    expect(exitOf(['-listen-socket', '/a', '-mux-socket', '/b', '--bogus=1']).code).toBe(2);
  });

  it('validates levels, formats and numbers', () => {
    const base = ['-listen-socket', '/a', '-mux-socket', '/b'];
    expect(exitOf([...base, '-log', 'verbose']).code).toBe(2);
    expect(daemon([...base, '-log', 'warning']).logLevel).toBe('warn');
    expect(daemon([...base, '-log', 'panic']).logLevel).toBe('panic');
    expect(exitOf([...base, '-log-format', 'xml']).code).toBe(2);
    expect(exitOf([...base, '-retry-timeout', '-3']).code).toBe(2);
    expect(exitOf([...base, '-retry-timeout', 'soon']).code).toBe(2);
    expect(exitOf([...base, '-listen-mode', '999']).code).toBe(2);
    expect(daemon([...base, '-listen-mode', '0600', '-retry-timeout', '2.5'])).toMatchObject({ listenMode: 0o600, retryTimeoutMs: 2500 });
    expect(exitOf([...base, '-mux-device', '/dev/ttyS1']).stderr).toMatch(/exclude each other/);
    expect(daemon(['-listen-socket', '/a', '-mux-device', '/dev/ttyS1', '-baud', '9600'])).toMatchObject({
      muxDevice: '/dev/ttyS1',
      baud: 9600,
    });
  });

  it('parses the subcommands', () => {
    expect(parseCommandLine(['demo'])).toEqual({ kind: 'demo', stay: false });
    expect(parseCommandLine(['demo', '--stay'])).toEqual({ kind: 'demo', stay: true });
    expect(parseCommandLine(['simulate-guest', '-listen', '/tmp/k.sock'])).toEqual({ kind: 'simulate-guest', listen: '/tmp/k.sock' });
    expect(parseCommandLine(['install-units', '--dir', '/tmp/u'])).toEqual({ kind: 'install-units', dir: '/tmp/u', host: false });
    expect(parseCommandLine(['install-units', '-host', '-dir=/tmp/u'])).toEqual({ kind: 'install-units', dir: '/tmp/u', host: true });
    expect(exitOf(['simulate-guest']).code).toBe(2);
  });
});
