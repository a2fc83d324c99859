/**
 * A real HAProxy (Debian's /usr/sbin/haproxy) in front of a sandbox fleet: one TCP frontend on a free loopback
 * port, one backend with a server per node, only the primary `ready` (the others put in maintenance at start), and the runtime API on a unix socket (`stats socket … level admin`). A client that connects
 * only through the frontend reaches whichever node the backend has ready; a post-promotion hook moves it with
 * `set server <be>/<srv> state ready|maint` (and `shutdown sessions server`, so clients still connected to the
 * old primary reconnect) through that socket — `moveHook()` is that hook's command, for the inventory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { sleep, startOnFreePort } from './ports';

export const HAPROXY_BINARY = process.env.HANDOVER_HAPROXY ?? '/usr/sbin/haproxy';

export interface HaproxyFront {
  host: string;
  port: number;
  backend: string;
  socket: string;
  /** One runtime API command (or several separated by ";"); the answer as text. */
  command(cmd: string): Promise<string>;
  /** Per server: its administrative/operational state as `show servers state` reports it ('ready' or 'maint'). */
  states(): Promise<Record<string, 'ready' | 'maint' | string>>;
  /**
   * The post-promotion hook that moves the writer endpoint: {newPrimary} ready, {oldPrimary} in maintenance and
   * its sessions shut, through the runtime API with socat. Fails (non-zero exit) when HAProxy refuses a command.
   */
  moveHook(): string;
  stop(): Promise<void>;
}

export async function startHaproxy(o: { name: string; dir: string; nodes: { id: string; host: string; port: number }[]; primary: string }): Promise<HaproxyFront> {
  mkdirSync(o.dir, { recursive: true });
  const socket = path.join(o.dir, 'haproxy-admin.sock');
  const backend = `be_${o.name.replace(/[^A-Za-z0-9_]/g, '_')}`;
  const cfg = path.join(o.dir, 'haproxy.cfg');
  const command = (cmd: string) =>
    new Promise<string>((resolve, reject) => {
      const s = net.createConnection(socket);
      let out = '';
      s.on('data', (d) => (out += String(d)));
      s.on('end', () => resolve(out.trim()));
      s.on('error', reject);
      s.write(cmd + '\n');
    });
  // On a port the kernel called free; started again on a new one when another process bound it first
  // (haproxy exits saying "Address already in use").
  const { port, child, exited } = await startOnFreePort(async (port) => {
    writeFileSync(
      cfg,
      [
        'global',
        `  stats socket ${socket} mode 600 level admin`,
        '  maxconn 512',
        'defaults',
        '  mode tcp',
        '  timeout connect 1s',
        '  timeout client 1h',
        '  timeout server 1h',
        `frontend fe_${backend.slice(3)}`,
        `  bind 127.0.0.1:${port}`,
        `  default_backend ${backend}`,
        `backend ${backend}`,
        ...o.nodes.map((n) => `  server ${n.id} ${n.host}:${n.port}`),
        '',
      ].join('\n'),
    );
    const child: ChildProcess = spawn(HAPROXY_BINARY, ['-db', '-f', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (d) => (stderr += String(d)));
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    // Ready when the runtime API answers (the frontend is bound before the socket is served).
    for (let i = 0; ; i++) {
      if (child.exitCode !== null) throw new Error(`haproxy exited ${child.exitCode}: ${stderr.trim()}`);
      const ok = await command('show info').then(
        (t) => /^Name: HAProxy/m.test(t),
        () => false,
      );
      if (ok) break;
      if (i > 200) {
        child.kill('SIGKILL');
        throw new Error(`haproxy did not serve ${socket} within 10 s: ${stderr.trim()}`);
      }
      await sleep(50);
    }
    return { port, child, exited };
  });

  // Every node but the primary in maintenance, set through the runtime API (a config `disabled` would be a
  // maintenance that `set server … state ready` cannot lift).
  for (const n of o.nodes) if (n.id !== o.primary) await command(`set server ${backend}/${n.id} state maint`);

  const front: HaproxyFront = {
    host: '127.0.0.1',
    port,
    backend,
    socket,
    command,
    async states() {
      // "show servers state <be>": fields … srv_name … srv_admin_state (maintenance bits 0x67: forced, inherited, config, resolution, hostname) …
      const text = await command(`show servers state ${backend}`);
      const out: Record<string, string> = {};
      for (const line of text.split('\n')) {
        const f = line.trim().split(/\s+/);
        if (f.length < 8 || !/^\d+$/.test(f[0])) continue;
        const admin = Number(f[6]);
        out[f[3]] = admin & 0x67 ? 'maint' : 'ready';
      }
      return out;
    },
    moveHook() {
      const cmds = `set server ${backend}/{newPrimary} state ready;set server ${backend}/{oldPrimary} state maint;shutdown sessions server ${backend}/{oldPrimary}`;
      // HAProxy answers an empty line per accepted command and a message for a refused one.
      return `out=$(printf '%s\\n' '${cmds}' | socat -t 5 - UNIX-CONNECT:${socket}) || exit 1; echo "haproxy: moved ${backend} to {newPrimary} $out"; ! printf '%s' "$out" | grep -qiE 'no such|unknown|not found|require|denied'`;
    },
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await Promise.race([exited, sleep(5000)]);
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
  return front;
}
