// A NOTIFY_SOCKET of our own: socat binds the datagram socket (Node cannot) and prints each
// datagram on its own line, so a test sees what sd_notify sent and in which order.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';

export class NotifyReceiver {
  readonly messages: string[] = [];
  private readonly proc: ChildProcess;
  private waiters: (() => void)[] = [];

  /** `address` is a path, or `@name` for an abstract socket. */
  constructor(readonly address: string) {
    const listen = address.startsWith('@') ? `ABSTRACT-RECVFROM:${address.slice(1)},fork` : `UNIX-RECVFROM:${address},fork`;
    this.proc = spawn('socat', ['-u', listen, 'SYSTEM:cat; echo'], { stdio: ['ignore', 'pipe', 'inherit'] });
    createInterface({ input: this.proc.stdout! }).on('line', (line) => {
      // Datagrams that arrive back to back can reach one forked socat child: split them again.
      for (const m of line.split(/(?=(?:READY|STATUS|STOPPING|WATCHDOG|RELOADING|MAINPID|ERRNO)=)/)) if (m) this.messages.push(m);
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
