// A NOTIFY_SOCKET of our own: socat binds the datagram socket (Node cannot) and copies each
// datagram to its stdout as it comes, one socat process for all of them, so that a test sees what
// sd_notify sent and in which order (across processes too: the order the socket queued them).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';

/** Where one message begins: after a newline (RELOADING=1 and its MONOTONIC_USEC=) or at a known key. */
const MESSAGE_START = /\n|(?=(?:READY|STATUS|STOPPING|WATCHDOG|RELOADING|MAINPID|ERRNO)=)/;

export class NotifyReceiver {
  readonly messages: string[] = [];
  private readonly proc: ChildProcess;
  private waiters: (() => void)[] = [];

  /** `address` is a path, or `@name` for an abstract socket. */
  constructor(readonly address: string) {
    const listen = address.startsWith('@') ? `ABSTRACT-RECV:${address.slice(1)}` : `UNIX-RECV:${address}`;
    this.proc = spawn('socat', ['-u', listen, 'STDOUT'], { stdio: ['ignore', 'pipe', 'inherit'] });
    this.proc.stdout!.setEncoding('utf8');
    // Datagrams have no end mark on stdout: a read may hold several; each is whole (a pipe write of a few bytes is atomic).
    this.proc.stdout!.on('data', (text: string) => {
      for (const m of text.split(MESSAGE_START)) if (m) this.messages.push(m);
      for (const w of this.waiters.splice(0)) w();
    });
  }

  async ready(): Promise<void> {
    if (this.address.startsWith('@')) return new Promise((r) => setTimeout(r, 200));
    const deadline = Date.now() + 5000;
    while (!existsSync(this.address)) {
      if (Date.now() > deadline) throw new Error('socat did not bind the notify socket');
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async waitFor(match: (m: string) => boolean, timeoutMs = 10_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.messages.find(match);
      if (found) return found;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no notify message matched; got ${JSON.stringify(this.messages)}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  close(): void {
    this.proc.kill();
  }
}
