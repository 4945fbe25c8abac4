import { controlRequest } from '../host/control-client.js';
import type { PodView } from '../host/pod-view.js';
import { DEFAULT_CONTROL_SOCKET, type PodCommand } from './command-line.js';
import { ExitStatus } from './exit-status.js';

interface Reply {
  status: number;
  body: Record<string, unknown>;
}

/** `kata-proxy pod add|rm|ls|show` against the host's control socket. */
export async function runPodCommand(command: PodCommand, env: NodeJS.ProcessEnv = process.env): Promise<ExitStatus> {
  const socket = command.controlSocket ?? env.KATA_PROXY_CONTROL_SOCKET ?? DEFAULT_CONTROL_SOCKET;
  let reply: Reply;
  try {
    reply = await send(socket, command);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    // The request reached the host, which went away before answering (stopped or restarted).
    const cutOff = e.code === 'ECONNRESET' && command.action !== 'ls' && command.action !== 'upgrade' ? `; check with \`kata-proxy pod show ${command.id}\` once it is back` : '';
    process.stderr.write(`kata-proxy: ${cutOff ? 'the host closed the connection before answering' : `cannot reach the host at ${socket}`}: ${e.message}${cutOff}\n`);
    return ExitStatus.Failure;
  }
  if (reply.status >= 300) {
    // A pod that ended before its session was up (502) says why in its end.
    const why = (reply.body.pod as PodView | undefined)?.end?.error;
    process.stderr.write(`kata-proxy: ${String(reply.body.error)} (${String(reply.body.code)})${why ? `: ${why}` : ''}\n`);
    return ExitStatus.Failure;
  }
  switch (command.action) {
    case 'add':
      process.stdout.write(`pod ${command.id} ${reply.status === 201 ? 'added' : 'already present'} (${String(reply.body.state)})\n`);
      break;
    case 'rm':
      process.stdout.write(`pod ${command.id} removed\n`);
      break;
    case 'show':
      process.stdout.write(`${JSON.stringify(reply.body, null, 2)}\n`);
      break;
    case 'ls':
      process.stdout.write(podTable(reply.body.pods as PodView[]));
      break;
    case 'upgrade': {
      const stayed = (reply.body.stayed as { id: string; reason: string }[]) ?? [];
      process.stdout.write(`host reloaded: ${String(reply.body.moved)} pods moved to pid ${String(reply.body.pid)} in ${String(reply.body.ms)} ms\n`);
      for (const s of stayed) process.stdout.write(`pod ${s.id} still with the previous process (moved as soon as it can): ${s.reason}\n`);
      break;
    }
  }
  return ExitStatus.Ok;
}

async function send(socketPath: string, command: PodCommand): Promise<Reply> {
  const path = command.action === 'ls' ? '/pods' : command.action === 'upgrade' ? '/upgrade' : `/pods/${encodeURIComponent(command.id)}`;
  const method = { add: 'PUT', rm: 'DELETE', show: 'GET', ls: 'GET', upgrade: 'POST' }[command.action];
  const query = command.action === 'add' && command.wait ? '?wait=serving' : '';
  const { status, body } = await controlRequest(socketPath, method, path + query, command.action === 'add' ? command.body : undefined, 0);
  if (typeof body !== 'object' || body === null) throw new Error(`the host answered ${status} without JSON: ${String(body)}`);
  return { status, body: body as Record<string, unknown> };
}

/** `pod ls`: one row per pod, columns aligned. */
export function podTable(pods: PodView[]): string {
  const rows = [['ID', 'STATE', 'CLIENTS', 'STREAMS', 'IN', 'OUT', 'UPTIME', 'END']];
  for (const p of pods) {
    const end = p.moving
      ? `still in pid ${p.moving.pid}: ${p.moving.reason}`
      : p.end ? `${p.end.reason}${p.end.error ? `: ${p.end.error}` : ''}` : '';
    rows.push([p.id, p.state, String(p.clients), String(p.streams), bytes(p.bytesIn), bytes(p.bytesOut), duration(p.uptimeMs), end]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n') + '\n';
}

function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  for (; n >= 1024 && i < units.length - 1; i++) n /= 1024;
  return i === 0 ? `${n}B` : `${n.toFixed(1)}${units[i]}`;
}

function duration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d${Math.floor((s % 86400) / 3600)}h`;
}
