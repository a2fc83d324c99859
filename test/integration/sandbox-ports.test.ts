/**
 * Ports: the kernel's "free port" probe closes its socket before the server binds, so another process may take
 * the port in between. startOnFreePort (activities/backup/scratch.ts, used by the scratch servers and every
 * sandbox fleet) starts the server again on a new port when it fails with "Address already in use": shown with
 * a real redis-server and mariadbd whose first port is held by another listener, and a Dolt pair
 * (startOnFreePorts: its nodes name each other's ports, so all are picked again) that loses its SQL port, then
 * a remotesapi port (skipped, saying why, when no dolt binary is found).
 */
import net from 'node:net';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { mariaNode, templateDir } from '../../activities/backup/scratch-mysql';
import { cpSync } from 'node:fs';
import { startOnFreePort, startOnFreePorts } from '../../sandbox/ports';
import { DOLT_NOT_FOUND, doltBinary, startDoltNodes } from '../../sandbox/dolt';
import mysql from 'mysql2/promise';
import { baseRedisConf, startNodeProcess } from '../../sandbox/redis';
import { redisServerBinary } from '../../sandbox/paths';

/** A port held by a plain listener until released. */
async function holdPort(): Promise<{ port: number; release(): Promise<void> }> {
  // It accepts connections and never answers, as a foreign server on the port might.
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((sock) => sockets.add(sock));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    port: (srv.address() as net.AddressInfo).port,
    release: () =>
      new Promise((r) => {
        srv.close(() => r());
        for (const sock of sockets) sock.destroy();
      }),
  };
}

describe('servers started on a free port are retried on EADDRINUSE', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'handover-ports-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('redis-server: the first port is taken, the second attempt binds a new one', async () => {
    const held = await holdPort();
    const tried: number[] = [];
    try {
      const node = await startOnFreePort(async (free) => {
        const port = tried.length === 0 ? held.port : free; // the first attempt loses the race
        tried.push(port);
        const d = path.join(dir, `redis-${tried.length}`);
        mkdirSync(d, { recursive: true });
        writeFileSync(path.join(d, 'redis.conf'), baseRedisConf({ port, dir: d, password: 'pw-ports' }).join('\n') + '\n');
        const n = startNodeProcess({ id: 'ports', port, dir: d, binary: redisServerBinary('redis'), password: 'pw-ports' });
        await n.start();
        return n;
      });
      try {
        expect(tried).toHaveLength(2);
        expect(node.port).toBe(tried[1]);
        expect(node.port).not.toBe(held.port);
        const c = node.client();
        expect(await c.ping()).toBe('PONG');
        c.disconnect();
      } finally {
        await node.stop('SIGKILL');
      }
    } finally {
      await held.release();
    }
  });

  const dolt = doltBinary();
  if (!dolt) console.log(`SKIPPED: the Dolt case of test/integration/sandbox-ports.test.ts: ${DOLT_NOT_FOUND}`);
  it.skipIf(!dolt)('dolt sql-server pair: a lost SQL port, then a lost remotesapi port; the third attempt binds new ones', async () => {
    const held = [await holdPort(), await holdPort()];
    const tried: number[][] = [];
    try {
      const nodes = await startOnFreePorts(4, async (free) => {
        // Attempt 1: node 1's SQL port is taken; attempt 2: node 2's remotesapi port.
        const ports = tried.length === 0 ? [held[0].port, ...free.slice(1)] : tried.length === 1 ? [...free.slice(0, 3), held[1].port] : free;
        tried.push(ports);
        return startDoltNodes({ binary: dolt!, cluster: 'ports-dolt', baseDir: path.join(dir, `dolt-${tried.length}`), ports });
      });
      try {
        expect(tried).toHaveLength(3);
        expect(nodes.map((n) => [n.port, n.remotesPort])).toEqual([tried[2].slice(0, 2), tried[2].slice(2)]);
        for (const [i, n] of nodes.entries()) {
          const c = await mysql.createConnection({ host: n.host, port: n.port, user: 'root' });
          const [[row]] = (await c.query('SELECT @@GLOBAL.dolt_cluster_role AS role')) as unknown as [[{ role: string }]];
          expect(row.role).toBe(i === 0 ? 'primary' : 'standby');
          await c.end();
        }
      } finally {
        await Promise.all(nodes.map((n) => n.kill()));
      }
    } finally {
      for (const h of held) await h.release();
    }
  });

  it('mariadbd: the first port is taken, the second attempt binds a new one', async () => {
    const held = await holdPort();
    const template = await templateDir();
    const tried: number[] = [];
    try {
      const node = await startOnFreePort(async (free) => {
        const port = tried.length === 0 ? held.port : free;
        tried.push(port);
        const d = path.join(dir, `maria-${tried.length}`);
        cpSync(template, path.join(d, 'data'), { recursive: true });
        const n = mariaNode({ id: 'ports', port, serverId: 1, dir: d });
        await n.start();
        return n;
      });
      try {
        expect(tried).toHaveLength(2);
        expect(node.port).toBe(tried[1]);
        const c = await node.root();
        const [[row]] = (await c.query('SELECT @@port AS port')) as unknown as [[{ port: number }]];
        expect(row.port).toBe(tried[1]);
        await c.end();
      } finally {
        await node.stop('SIGKILL');
      }
    } finally {
      await held.release();
    }
  });
});
