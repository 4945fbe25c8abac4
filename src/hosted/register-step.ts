// The registration step the native handle (native/kata-proxy-handle.c) runs as its child:
// `node register-step.js ARGV...`. It tells the handle what to do next on fd 3, as NUL-terminated
// fields: "attach" CONTROL-SOCKET POD-PATH, or "exec" PROGRAM ARG..., or nothing (then the
// handle exits with this step's status).
import { writeSync } from 'node:fs';
import { finish, register } from './register.js';

const outcome = await register(process.argv.slice(2), process.env, process.ppid); // the handle is our parent
switch (outcome.kind) {
  case 'exit':
    finish(outcome);
    break;
  case 'attach':
    writeSync(3, `attach\0${outcome.controlSocket}\0${outcome.podPath}\0`);
    break;
  case 'exec':
    writeSync(3, ['exec', ...outcome.argv].map((f) => `${f}\0`).join(''));
    break;
}
