// The per-pod handle when no native one was built (bin/kata-proxy-hosted falls back to it): the
// same registration and attach protocol, held by a Node process (several MB per pod instead of
// well under one; see README "Kata runtime with host mode").
import { createLoggers } from '../log/logger.js';
import { holdPod } from './attach.js';
import { finish, register } from './register.js';

const argv = process.argv.slice(2);
const outcome = await register(argv, process.env, process.pid);
switch (outcome.kind) {
  case 'exit':
    finish(outcome);
    break;
  case 'exec': {
    const { main } = await import('../cli/main.js');
    await main(outcome.argv.slice(1));
    break;
  }
  case 'attach': {
    const loggers = createLoggers({ level: 'warn', format: 'logfmt', sink: 'auto' });
    process.exitCode = await holdPod(outcome.controlSocket, outcome.podPath, loggers.proxy);
    await loggers.writer.flush();
    break;
  }
}
