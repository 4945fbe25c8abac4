// Wire constants of github.com/hashicorp/yamux spec.md (and const.go).

export const PROTOCOL_VERSION = 0;
export const HEADER_SIZE = 12;

export enum FrameType {
  Data = 0,
  WindowUpdate = 1,
  Ping = 2,
  GoAway = 3,
}

/** Flags are a bit set: a Data or WindowUpdate frame may carry several (ACK|FIN, SYN|FIN...). */
export enum Flag {
  None = 0,
  SYN = 1,
  ACK = 2,
  FIN = 4,
  RST = 8,
}

export enum GoAwayCode {
  Normal = 0,
  ProtocolError = 1,
  InternalError = 2,
}

/** Every stream starts with this receive window on both sides (spec: 256 KiB). */
export const INITIAL_STREAM_WINDOW = 256 * 1024;
export const MAX_WINDOW = 0xffff_ffff;

export function typeName(type: number): string {
  return ['Data', 'WindowUpdate', 'Ping', 'GoAway'][type] ?? `Unknown(${type})`;
}

export function flagNames(flags: number): string {
  const names: string[] = [];
  if (flags & Flag.SYN) names.push('SYN');
  if (flags & Flag.ACK) names.push('ACK');
  if (flags & Flag.FIN) names.push('FIN');
  if (flags & Flag.RST) names.push('RST');
  return names.join('|') || '0';
}
