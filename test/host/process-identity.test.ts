// whenExited against a real process whose main thread dies first: its other thread still holds
// the process's descriptors, so its listen socket still accepts while the main thread is a zombie.
// isSameProcess against a real zombie (a child its parent does not reap).
import { execFile, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { isSameProcess, processStartTime, processState, whenExited } from '../../src/host/process-identity.js';
import { isLive } from '../../src/proxy/listener.js';
import { until } from '../helpers/yamux-pair.js';
import { createTempDir } from '../helpers/tmp.js';

const cc = process.env.CC || 'cc';
const haveCc = await promisify(execFile)(cc, ['--version']).then(() => true, () => false);

/** Listens on argv[1]; its main thread exits at once, a second thread holds on until stdin closes. */
const MAIN_THREAD_FIRST = `
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
static void *hold(void *arg) { char c; (void)arg; while (read(0, &c, 1) > 0) {} return NULL; }
int main(int argc, char **argv) {
  struct sockaddr_un a = { .sun_family = AF_UNIX };
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  pthread_t t;
  if (argc < 2) return 2;
  strncpy(a.sun_path, argv[1], sizeof a.sun_path - 1);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 8) || pthread_create(&t, NULL, hold, NULL)) return 1;
  puts("listening");
  fflush(stdout);
  pthread_exit(NULL);
}
`;

describe.skipIf(!haveCc)('whenExited', () => {
  it('waits past a zombie main thread until the last thread has let go of the descriptors', async () => {
    const dir = createTempDir('kppi');
    try {
      writeFileSync(dir.file('t.c'), MAIN_THREAD_FIRST);
      await promisify(execFile)(cc, ['-pthread', '-o', dir.file('t'), dir.file('t.c')]);
      const sock = dir.socket('listen');
      const proc = spawn(dir.file('t'), [sock], { stdio: ['pipe', 'pipe', 'inherit'] });
      let out = '';
      proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
      await until(() => out.includes('listening'), 10_000);
      await until(() => processState(proc.pid!) === 'Z', 10_000);
      // The main thread is a zombie, and the socket still accepts: its other thread holds it.
      expect(await isLive(sock)).toBe(true);
      let exited = false;
      const waiting = whenExited(proc.pid!, 30_000).then(() => (exited = true));
      await new Promise((r) => setTimeout(r, 100));
      expect(exited).toBe(false);
      proc.stdin.end(); // the holding thread returns: the process ends
      await waiting;
      expect(await isLive(sock)).toBe(false);
    } finally {
      dir.cleanup();
    }
  });
});

describe('isSameProcess', () => {
  it('a running process is; once it is a zombie (not reaped yet) it is not, nor is another start time', async () => {
    // sh starts a child and becomes `sleep`, which never reaps it: the child stays a zombie.
    const parent = spawn('sh', ['-c', 'sleep 0.3 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      let out = '';
      parent.stdout.on('data', (d: Buffer) => (out += d.toString()));
      await until(() => out.includes('\n'), 10_000);
      const pid = Number(out.trim());
      const started = processStartTime(pid)!;
      expect(isSameProcess(pid, started)).toBe(true);
      expect(isSameProcess(pid, `${started}1`)).toBe(false);
      await until(() => processState(pid) === 'Z', 10_000);
      expect(processStartTime(pid)).toBe(started); // still listed, with the same start time
      expect(isSameProcess(pid, started)).toBe(false);
    } finally {
      parent.kill();
    }
  });
});
