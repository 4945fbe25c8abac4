import { INITIAL_STREAM_WINDOW } from './constants.js';

export type YamuxLogLevel = 'debug' | 'info' | 'warn' | 'error';
/** Log hook: the engine never writes anywhere by itself. */
export type YamuxLogger = (level: YamuxLogLevel, msg: string, fields?: Record<string, unknown>) => void;

/** Mirrors hashicorp/yamux's Config (same names and defaults), in milliseconds. */
export interface YamuxConfig {
  /** Inbound streams waiting to be accepted; past this a SYN is answered with RST. Also the
   * number of our own SYNs that may await an ACK before further opens wait their turn. */
  acceptBacklog: number;
  enableKeepAlive: boolean;
  keepAliveInterval: number;
  /** When false, a keepalive ping that goes unanswered is only reported ('keepalive-timeout'),
   * never fatal. hashicorp always closes the session; a paused VM needs this off. */
  keepAliveCloseOnTimeout: boolean;
  /** How long queued frames may wait for the link to drain before waiting writes fail.
   * Also the default ping timeout. 0 disables. */
  connectionWriteTimeout: number;
  /** Receive window per stream; values above 256 KiB are announced with SYN/ACK. */
  maxStreamWindowSize: number;
  /** An opened stream that gets no ACK within this time is reset. 0 disables. */
  streamOpenTimeout: number;
  /** After we sent FIN, the peer has this long to send its own before the stream is reset. 0 disables. */
  streamCloseTimeout: number;
  /** Largest Data payload per frame: smaller frames let small RPCs interleave with bulk streams. */
  maxFrameSize: number;
  /** Receive-window auto-tuning (libp2p go-yamux's rule): a stream whose window is used up within
   * a few round trips has it doubled, up to this size. 0 (hashicorp's behaviour) disables. */
  autoTuneWindowCap: number;
  /** The most all streams of a session may have grown beyond maxStreamWindowSize together, so
   * the memory a session may be sent stays bounded. */
  autoTuneBudget: number;
  logger?: YamuxLogger;
}

export const defaultConfig: Readonly<YamuxConfig> = Object.freeze({
  acceptBacklog: 256,
  enableKeepAlive: true,
  keepAliveInterval: 30_000,
  keepAliveCloseOnTimeout: true,
  connectionWriteTimeout: 10_000,
  maxStreamWindowSize: INITIAL_STREAM_WINDOW,
  streamOpenTimeout: 75_000,
  streamCloseTimeout: 300_000,
  maxFrameSize: 64 * 1024,
  autoTuneWindowCap: 0,
  autoTuneBudget: 16 * 1024 * 1024,
});

export function resolveConfig(partial: Partial<YamuxConfig> = {}): YamuxConfig {
  const config = { ...defaultConfig, ...partial };
  if (!(config.acceptBacklog > 0)) throw new RangeError('acceptBacklog must be positive');
  if (config.enableKeepAlive && !(config.keepAliveInterval > 0)) {
    throw new RangeError('keepAliveInterval must be positive');
  }
  if (!(config.maxStreamWindowSize >= INITIAL_STREAM_WINDOW) || config.maxStreamWindowSize > 0xffff_ffff) {
    throw new RangeError(`maxStreamWindowSize must be between ${INITIAL_STREAM_WINDOW} and 2^32-1`);
  }
  if (config.autoTuneWindowCap > 0xffff_ffff) throw new RangeError('autoTuneWindowCap must be at most 2^32-1');
  if (!(config.maxFrameSize >= 1024)) throw new RangeError('maxFrameSize must be at least 1024');
  return config;
}
