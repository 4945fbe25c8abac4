import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/cli/go-flags.js';
import { splitHostedArgs } from '../../src/cli/hosted-args.js';

const POD = ['-listen-socket', 'unix:///run/vc/sbs/p/proxy.sock', '-mux-socket', '/run/vc/vm/p/kata.sock', '-sandbox', 'p'];

describe('splitHostedArgs', () => {
  it('leaves the per-pod argv alone and uses the default socket', () => {
    expect(splitHostedArgs(POD, {})).toEqual({ argv: POD, controlSocket: '/run/kata-proxy/host.sock', fallback: false });
  });

  it('takes -control-socket and -fallback out in every Go form; flags beat the environment', () => {
    const env = { KATA_PROXY_CONTROL_SOCKET: '/env.sock', KATA_PROXY_HOSTED_FALLBACK: '1' };
    expect(splitHostedArgs([...POD, '-control-socket', '/a.sock'], env)).toEqual({ argv: POD, controlSocket: '/a.sock', fallback: true });
    expect(splitHostedArgs(['--control-socket=/b.sock', ...POD, '-fallback=false'], env)).toEqual({ argv: POD, controlSocket: '/b.sock', fallback: false });
    expect(splitHostedArgs([...POD, '--fallback'], {})).toMatchObject({ argv: POD, fallback: true });
    expect(splitHostedArgs(POD, env)).toEqual({ argv: POD, controlSocket: '/env.sock', fallback: true });
  });

  it('stops at "--" and reports bad values', () => {
    expect(splitHostedArgs(['--', '-fallback'], {}).argv).toEqual(['--', '-fallback']);
    expect(() => splitHostedArgs(['-control-socket'], {})).toThrow(UsageError);
    expect(() => splitHostedArgs(['-fallback=perhaps'], {})).toThrow(UsageError);
  });
});
