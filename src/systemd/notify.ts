import { createRequire } from 'node:module';
import { addonLoadFailure } from '../native-addon.js';

const STATUS_INTERVAL_MS = 500;

/** The part of github.com/systemd/node-sd-notify (libsystemd's sd_notify) used here. */
interface SdNotify {
  ready(): void;
  stopping(pid: number): void;
  watchdog(): void;
  /** ms; 0 when WATCHDOG_USEC is unset or WATCHDOG_PID names another process. */
  watchdogInterval(): number;
  sendState(state: string): void;
}

/**
 * Readiness, status and watchdog pings to systemd. A no-op without NOTIFY_SOCKET; with it but
 * without the native module, `onUnavailable` is told once and calls stay no-ops.
 */
export class SystemdNotifier {
  private readonly sd: SdNotify | null;
  private watchdogTimer: NodeJS.Timeout | null = null;
  private lastStatus = '';
  private pendingStatus = '';
  private statusTimer: NodeJS.Timeout | null = null;

  constructor(onUnavailable: (reason: string) => void = () => {}, env: NodeJS.ProcessEnv = process.env) {
    this.sd = env.NOTIFY_SOCKET ? loadSdNotify(onUnavailable) : null;
    const interval = this.sd?.watchdogInterval() ?? 0;
    if (this.sd && interval > 0) {
      // Half the interval, as sd_watchdog_enabled(3) recommends.
      this.watchdogTimer = setInterval(() => this.sd!.watchdog(), Math.max(1, Math.floor(interval / 2)));
      this.watchdogTimer.unref();
    }
  }

  get active(): boolean {
    return this.sd !== null;
  }

  get watchdogEnabled(): boolean {
    return this.watchdogTimer !== null;
  }

  ready(): void {
    this.sd?.sendState('READY=1');
  }

  /** At most one STATUS= per STATUS_INTERVAL_MS: a burst of 500 connections is not 1,000 datagrams. */
  status(text: string): void {
    if (!this.sd) return;
    this.pendingStatus = text;
    if (this.statusTimer) return;
    this.flushStatus();
    this.statusTimer = setTimeout(() => {
      this.statusTimer = null;
      if (this.pendingStatus !== this.lastStatus) this.status(this.pendingStatus);
    }, STATUS_INTERVAL_MS);
    this.statusTimer.unref();
  }

  /** Sends the last status again (a reload's successor: what it said before it was main was not heard). */
  repeatStatus(): void {
    const text = this.pendingStatus;
    this.lastStatus = '';
    if (this.statusTimer) clearTimeout(this.statusTimer);
    this.statusTimer = null;
    this.status(text);
  }

  private flushStatus(): void {
    if (this.pendingStatus === this.lastStatus) return;
    this.lastStatus = this.pendingStatus;
    this.sd?.sendState(`STATUS=${this.lastStatus}`);
  }

  /** A reload began (systemctl shows "reloading" until READY=1 comes, from this process or its successor). */
  reloading(): void {
    this.sd?.sendState(`RELOADING=1\nMONOTONIC_USEC=${process.hrtime.bigint() / 1000n}`);
  }

  /** The service's main process is now `pid` (a reload's successor; NotifyAccess=main lets only us say so). */
  mainPid(pid: number): void {
    this.sd?.sendState(`MAINPID=${pid}`);
  }

  stopping(): void {
    this.sd?.sendState('STOPPING=1');
  }

  stop(): void {
    if (this.watchdogTimer) clearInterval(this.watchdogTimer);
    if (this.statusTimer) clearTimeout(this.statusTimer);
    this.watchdogTimer = null;
    this.statusTimer = null;
  }
}

function loadSdNotify(onUnavailable: (reason: string) => void): SdNotify | null {
  try {
    return createRequire(import.meta.url)('sd-notify') as SdNotify;
  } catch (err) {
    onUnavailable(`readiness notification is off: NOTIFY_SOCKET is set but ${addonLoadFailure('sd-notify', err)}`);
    return null;
  }
}
