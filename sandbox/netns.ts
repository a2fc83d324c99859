/**
 * A multi-host test network on one machine: each database node in its own network namespace with its own
 * address on a private subnet, all joined by one bridge in the root namespace, where Temporal, the worker and
 * the test process stay and reach the nodes through the bridge's own address.
 *
 *   root namespace: bridge hnd-br<lab> with <subnet>.1/24 (the worker's address as the nodes see it)
 *   namespace hnd-<lab>-<i>: eth0 = <subnet>.<10+i>/24 (veth; its root end hnd-<lab>-<i> is a bridge port)
 *
 * Nothing here sends traffic anywhere but inside that subnet: the namespaces have no default route, and the
 * only addresses on the bridge are the ones created here. Every name starts with `hnd-`, so a run that died
 * half-way is cleaned up by removeLeftovers() at the next start.
 *
 * Faults:
 *  - cut(host) / heal(host): the node's root-side veth down/up: the node is cut off from everyone.
 *  - isolateFromRoot(host) / rejoinRoot(host): only the root namespace (the worker, the test's clients) loses
 *    the node, both ways; the nodes still reach each other over the bridge. Done without a firewall: the root
 *    namespace's neighbour entry for the node's address is pinned to a MAC address that no port has, so the
 *    root namespace's frames to it are flooded on this bridge and dropped by every namespace (silently:
 *    connections time out, as in a real partition). Nodes' frames to each other are untouched.
 *  - dropOutput(host, to) / clearDrops(host): one-way loss with nftables inside the host's namespace (a table
 *    `inet hnd` whose output chain drops what the host sends to those addresses; what they send still arrives).
 *  - forward(target): a TCP forwarder on the bridge address to a loopback-only service of the root namespace
 *    (Temporal, the S3 server), so that workers on lab hosts reach it.
 *
 * Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN), iproute2, and nft (/usr/sbin/nft) for one-way loss.
 */
import { execFile } from 'node:child_process';
import net from 'node:net';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export const NETNS_PREFIX = 'hnd-';
/** A locally administered MAC address that no interface here has: frames to it reach nobody. */
const NOWHERE_MAC = '02:00:00:00:00:00';

async function ip(args: string[], opts: { ns?: string; ignoreError?: boolean } = {}): Promise<string> {
  const full = opts.ns ? ['netns', 'exec', opts.ns, 'ip', ...args] : args;
  try {
    const { stdout } = await execFileP('ip', full, { timeout: 10_000 });
    return stdout;
  } catch (e) {
    if (opts.ignoreError) return '';
    const err = e as { stderr?: string; message: string };
    throw new Error(`ip ${full.join(' ')}: ${(err.stderr || err.message).trim()}`);
  }
}

export interface NetHost {
  /** Namespace name (also the name of the veth end in the root namespace). */
  ns: string;
  /** The node's address on the lab subnet. */
  address: string;
  /** The command prefix that runs a program inside the namespace: `ip netns exec <ns>`. */
  wrap: string[];
}

export interface NetLab {
  lab: string;
  bridge: string;
  /** The root namespace's address on the bridge (where the worker's connections come from). */
  gateway: string;
  /** `<subnet>.%`, a MySQL host pattern that matches every address of the lab. */
  hostPattern: string;
  hosts: NetHost[];
  addHost(): Promise<NetHost>;
  cut(host: NetHost): Promise<void>;
  heal(host: NetHost): Promise<void>;
  isolateFromRoot(host: NetHost): Promise<void>;
  rejoinRoot(host: NetHost): Promise<void>;
  /**
   * A TCP forwarder on the bridge address (`<gateway>:<port>`) to a service of the root namespace that listens
   * on loopback only (the Temporal dev server, the S3 server), so workers on lab hosts reach it.
   */
  forward(target: { host: string; port: number }): Promise<Forwarder>;
  /** Runs `nft` inside the host's namespace (one-way loss: drop rules on its input or output). */
  nft(host: NetHost, args: string[]): Promise<string>;
  /**
   * One-way loss (nftables in the host's namespace): every packet `host` sends to one of `to` (only to TCP port
   * `tcpPort` when given) is dropped; what the others send to it still arrives. Rules add up until clearDrops.
   */
  dropOutput(host: NetHost, to: string[], o?: { tcpPort?: number }): Promise<void>;
  /** Removes every rule dropOutput added on the host (idempotent). */
  clearDrops(host: NetHost): Promise<void>;
  /** Removes every namespace, veth and the bridge of this lab (idempotent). */
  remove(): Promise<void>;
}

export interface Forwarder {
  /** `<gateway>:<port>`. */
  address: string;
  port: number;
  close(): Promise<void>;
}

/** Runs nft with `args` in namespace `ns` (a firewall private to that host; removed with the namespace). */
export async function nftIn(ns: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await execFileP('ip', ['netns', 'exec', ns, 'nft', ...args], { timeout: 10_000 });
    return stdout;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`nft ${args.join(' ')} in ${ns}: ${(err.stderr || err.message).trim()}`);
  }
}

function startForwarder(listenHost: string, target: { host: string; port: number }): Promise<Forwarder> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((inbound) => {
    const outbound = net.connect(target.port, target.host);
    sockets.add(inbound).add(outbound);
    // An end is passed on by pipe() after the data already written (never destroy on close: it would drop the
    // tail of a response still buffered); an error resets both sides.
    const reset = () => {
      inbound.destroy();
      outbound.destroy();
    };
    inbound.on('error', reset).on('close', () => sockets.delete(inbound));
    outbound.on('error', reset).on('close', () => sockets.delete(outbound));
    inbound.pipe(outbound);
    outbound.pipe(inbound);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, listenHost, () => {
      const { port } = server.address() as net.AddressInfo;
      resolve({
        address: `${listenHost}:${port}`,
        port,
        close: () =>
          new Promise<void>((r) => {
            for (const s of sockets) s.destroy();
            server.close(() => r());
          }),
      });
    });
  });
}

/** Removes every namespace and link whose name starts with `hnd-` (leftovers of a run that died). */
export async function removeLeftovers(prefix = NETNS_PREFIX): Promise<string[]> {
  const removed: string[] = [];
  for (const line of (await ip(['netns', 'list'], { ignoreError: true })).split('\n')) {
    const name = line.split(' ')[0];
    if (name.startsWith(prefix)) {
      await ip(['netns', 'del', name], { ignoreError: true });
      removed.push(`netns ${name}`);
    }
  }
  for (const line of (await ip(['-o', 'link', 'show'], { ignoreError: true })).split('\n')) {
    const name = /^\d+:\s+([^:@\s]+)/.exec(line)?.[1];
    if (name?.startsWith(prefix)) {
      await ip(['link', 'del', name], { ignoreError: true });
      removed.push(`link ${name}`);
    }
  }
  return removed;
}

/**
 * Whether this machine lets us build the lab: a namespace, a veth into it, and the bridge. Returns undefined
 * when it works, else the exact error (the multi-host tests skip with it).
 */
export async function netnsUnavailable(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'not root (ip netns needs CAP_NET_ADMIN and CAP_SYS_ADMIN)';
  const probe = new Promise<string | undefined>((resolve) => {
    void (async () => {
      const lab = await createNetLab({ lab: 'probe', subnet: '10.77.254' });
      try {
        await lab.addHost();
        resolve(undefined);
      } finally {
        await lab.remove();
      }
    })().catch((e: Error) => resolve(e.message));
  });
  return probe;
}

/**
 * A bridge `hnd-br<lab>` with `<subnet>.1/24` in the root namespace. `lab` is a short name (at most 5
 * characters: Linux interface names have 15), `subnet` the first three octets of a private /24 that nothing
 * else on this machine uses (10.77.x).
 */
export async function createNetLab(o: { lab: string; subnet: string }): Promise<NetLab> {
  if (!/^[a-z0-9]{1,5}$/.test(o.lab)) throw new Error(`lab name ${o.lab}: 1-5 lowercase letters or digits`);
  if (!/^10\.77\.\d{1,3}$/.test(o.subnet)) throw new Error(`subnet ${o.subnet}: use 10.77.<n> (the lab's private range)`);
  const bridge = `${NETNS_PREFIX}br${o.lab}`;
  const gateway = `${o.subnet}.1`;
  const hosts: NetHost[] = [];
  const forwarders: Forwarder[] = [];
  await ip(['link', 'del', bridge], { ignoreError: true });
  await ip(['link', 'add', bridge, 'type', 'bridge']);
  await ip(['addr', 'add', `${gateway}/24`, 'dev', bridge]);
  await ip(['link', 'set', bridge, 'up']);

  const lab: NetLab = {
    lab: o.lab,
    bridge,
    gateway,
    hostPattern: `${o.subnet}.%`,
    hosts,
    async addHost() {
      const i = hosts.length + 1;
      if (i > 200) throw new Error('at most 200 hosts per lab');
      const ns = `${NETNS_PREFIX}${o.lab}-${i}`;
      const address = `${o.subnet}.${10 + i}`;
      const peer = `${ns}p`;
      await ip(['netns', 'del', ns], { ignoreError: true });
      await ip(['link', 'del', ns], { ignoreError: true });
      await ip(['netns', 'add', ns]);
      const host: NetHost = { ns, address, wrap: ['ip', 'netns', 'exec', ns] };
      hosts.push(host);
      await ip(['link', 'add', ns, 'type', 'veth', 'peer', 'name', peer]);
      await ip(['link', 'set', peer, 'netns', ns]);
      await ip(['link', 'set', ns, 'master', bridge]);
      await ip(['link', 'set', ns, 'up']);
      await ip(['link', 'set', peer, 'name', 'eth0'], { ns });
      await ip(['addr', 'add', `${address}/24`, 'dev', 'eth0'], { ns });
      await ip(['link', 'set', 'eth0', 'up'], { ns });
      await ip(['link', 'set', 'lo', 'up'], { ns });
      return host;
    },
    cut: (h) => ip(['link', 'set', h.ns, 'down']).then(() => undefined),
    heal: (h) => ip(['link', 'set', h.ns, 'up']).then(() => undefined),
    isolateFromRoot: (h) => ip(['neigh', 'replace', h.address, 'lladdr', NOWHERE_MAC, 'dev', bridge, 'nud', 'permanent']).then(() => undefined),
    async rejoinRoot(h) {
      await ip(['neigh', 'del', h.address, 'dev', bridge], { ignoreError: true });
    },
    async forward(target) {
      const f = await startForwarder(gateway, target);
      forwarders.push(f);
      return f;
    },
    nft: (h, args) => nftIn(h.ns, args),
    async dropOutput(h, to, o = {}) {
      await nftIn(h.ns, ['add', 'table', 'inet', 'hnd']);
      await nftIn(h.ns, ['add', 'chain', 'inet', 'hnd', 'out', '{ type filter hook output priority 0; policy accept; }']);
      await nftIn(h.ns, ['add', 'rule', 'inet', 'hnd', 'out', 'ip', 'daddr', `{ ${to.join(', ')} }`, ...(o.tcpPort ? ['tcp', 'dport', String(o.tcpPort)] : []), 'drop']);
    },
    async clearDrops(h) {
      await nftIn(h.ns, ['delete', 'table', 'inet', 'hnd']).catch(() => undefined);
    },
    async remove() {
      for (const f of forwarders.splice(0)) await f.close();
      for (const h of hosts) {
        await ip(['netns', 'del', h.ns], { ignoreError: true });
        await ip(['link', 'del', h.ns], { ignoreError: true });
      }
      await ip(['link', 'del', bridge], { ignoreError: true });
    },
  };
  return lab;
}

/** The named network namespace a process runs in (`ip netns identify <pid>`), '' for the root namespace. */
export async function namespaceOf(pid: number): Promise<string> {
  return (await ip(['netns', 'identify', String(pid)])).trim();
}
