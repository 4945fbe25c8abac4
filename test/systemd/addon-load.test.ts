// The one line the daemon logs when sd-notify or modern-syslog does not load, and which feature
// is then off (readiness notification, syslog).
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { addonLoadFailure } from '../../src/native-addon.js';

function loadError(id: string): unknown {
  try {
    createRequire(import.meta.url)(id);
  } catch (err) {
    return err;
  }
  throw new Error(`${id} loaded`);
}

describe('why a native add-on did not load', () => {
  it('built for another Node: both ABIs and how to rebuild', () => {
    // Node's message for an add-on of another NODE_MODULE_VERSION (what a change of line gives).
    const err = new Error(
      "The module '/usr/lib/kata-proxy/node_modules/sd-notify/build/Release/notify.node'\nwas compiled against a different Node.js version using\n" +
        `NODE_MODULE_VERSION 115. This version of Node.js requires\nNODE_MODULE_VERSION ${process.versions.modules}. Please try re-compiling or re-installing\nthe module (for instance, using \`npm rebuild\` or \`npm install\`).`,
    );
    expect(addonLoadFailure('sd-notify', err)).toBe(
      `the sd-notify module was built for another Node (ABI 115; Node ${process.version} needs ${process.versions.modules}): rebuild it with this Node (npm rebuild sd-notify)`,
    );
  });

  it('not installed (its build found no compiler)', () => {
    expect(addonLoadFailure('kata-proxy-absent-addon', loadError('kata-proxy-absent-addon'))).toBe(
      'the kata-proxy-absent-addon module is not installed (an optional dependency, built at install: it needs a C compiler)',
    );
  });

  it('anything else: the first line of the error, on one line', () => {
    expect(addonLoadFailure('modern-syslog', new Error('libfoo.so: cannot open shared object file\nmore'))).toBe(
      'the modern-syslog module does not load: libfoo.so: cannot open shared object file',
    );
  });
});
