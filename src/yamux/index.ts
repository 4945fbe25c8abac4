export * from './constants.js';
export * from './errors.js';
export { defaultConfig, resolveConfig, type YamuxConfig, type YamuxLogger, type YamuxLogLevel } from './config.js';
export { encodeHeader, decodeHeader, writeHeader, type FrameHeader } from './header.js';
export { FrameDecoder, type FrameHandler } from './decoder.js';
export type { ReadPacer } from './pacer.js';
export { PEER_DRIVEN_MESSAGES, Session, type SessionOptions, type SessionStats } from './session.js';
export { Stream, type StreamSink, type StreamStats, type StreamState } from './stream.js';
export { SESSION_SNAPSHOT_VERSION, SnapshotError, checkSnapshot, readableBytes, type SessionSnapshot, type StreamSnapshot } from './snapshot.js';
