/**
 * What the scratch servers of backup verification and restore share: a free loopback port and the retry when
 * another process takes it first. Between asking the kernel for a free port and the server binding it, any
 * process may bind it; a server that then fails with "Address already in use" is started again on a new port
 * (startOnFreePort), so the race costs a retry, never a failed verification.
 *
 * The servers themselves: scratch-redis.ts (redis-server / valkey-server) and scratch-mysql.ts (mariadbd). The
 * sandbox (tests, demo, bench) starts its fleets with the same code.
 */
import dgram from 'node:dgram';
import net from 'node:net';

/** A free TCP port on `host` (asks the kernel; the caller binds it soon after, see startOnFreePort). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, host, () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export async function portIsFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** How a server says its port was taken (`dolt sql-server` says "Port N already in use." of its SQL port). */
export const ADDRESS_IN_USE = /Address already in use|EADDRINUSE|errno: 98|error: 98|Port \d+ already in use/i;

/**
 * Start something on a free port: `start(port)` is retried on a new port when it fails because the port was
 * taken in the meantime (its error message says "Address already in use"); any other failure is thrown at once.
 */
export async function startOnFreePort<T>(start: (port: number) => Promise<T>, o: { host?: string; attempts?: number } = {}): Promise<T> {
  return startOnFreePorts(1, ([port]) => start(port), o);
}

/**
 * startOnFreePort for something that binds `count` ports at once (servers that name each other's ports in
 * their configuration): `count` distinct free ports, all picked again when `start` fails because one was taken.
 */
export async function startOnFreePorts<T>(count: number, start: (ports: number[]) => Promise<T>, o: { host?: string; attempts?: number } = {}): Promise<T> {
  const attempts = o.attempts ?? 5;
  for (let i = 1; ; i++) {
    const ports: number[] = [];
    while (ports.length < count) {
      const p = await freePort(o.host);
      if (!ports.includes(p)) ports.push(p);
    }
    try {
      return await start(ports);
    } catch (e) {
      if (i >= attempts || !ADDRESS_IN_USE.test((e as Error).message)) throw e;
    }
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The scratch servers' bind address: HANDOVER_SCRATCH_HOST, else loopback (see docs/runbooks/backup-common.md). */
export function scratchHost(env: NodeJS.ProcessEnv = process.env): string {
  return env.HANDOVER_SCRATCH_HOST || '127.0.0.1';
}

/**
 * This machine's address that the kernel would send from toward `host` (a connected UDP socket: no packet is
 * sent). A scratch server a node must connect to binds it, so a node on another host reaches the worker on
 * the interface that routes to it. Loopback for a loopback node.
 */
export async function localAddressToward(host: string): Promise<string> {
  if (host === 'localhost' || /^127\./.test(host) || host === '::1') return '127.0.0.1';
  const family = net.isIPv6(host) ? 'udp6' : 'udp4';
  const sock = dgram.createSocket(family);
  try {
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.connect(9, host, () => resolve());
    });
    return sock.address().address;
  } finally {
    sock.close();
  }
}
