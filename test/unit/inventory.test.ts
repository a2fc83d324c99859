import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { InventoryError, findCluster, findNode, parseInventory } from '../../inventory/load';
import { MYSQL8_REFUSED } from '../../inventory/schema';
import { resolveSecret } from '../../inventory/secrets';

const good = `clusters:
  - name: cache-a
    engine: redis
    credentials:
      password: { env: CACHE_A_PASSWORD }
    nodes:
      - { id: cache-a-1, host: 10.0.0.1, port: 6379 }
      - { id: cache-a-2, host: 10.0.0.2, port: 6379, promotion: prefer }
`;

function problems(text: string) {
  try {
    parseInventory(text, 'inv.yaml');
  } catch (e) {
    expect(e).toBeInstanceOf(InventoryError);
    return (e as InventoryError).problems;
  }
  throw new Error('expected an InventoryError');
}

describe('inventory', () => {
  it('parses a valid inventory with defaults', () => {
    const inv = parseInventory(good);
    const c = findCluster(inv, 'cache-a');
    expect(c.topology).toBe('replication');
    expect(c.policy.pauseTimeoutMs).toBe(5000);
    expect(c.policy.handoverMethod).toBe('pause-promote');
    expect(findNode(c, 'cache-a-1').promotion).toBe('neutral');
    expect(findNode(c, 'cache-a-2').promotion).toBe('prefer');
    expect(() => findCluster(inv, 'nope')).toThrow(/unknown cluster "nope".*cache-a/);
    expect(() => findNode(c, 'x')).toThrow(/unknown node "x" in cluster cache-a/);
  });

  it('parses hooks of every runbook (lists default to empty) and rejects a hook that is not a command list', () => {
    const withHooks = good.replace('    nodes:\n', '    hooks:\n      preFailover: ["page {cluster} {oldPrimary} {newPrimary}"]\n    nodes:\n');
    expect(findCluster(parseInventory(withHooks), 'cache-a').hooks).toEqual({ preFailover: ['page {cluster} {oldPrimary} {newPrimary}'], postFailover: [], preSwitchover: [], postSwitchover: [], postPromotion: [], preRollingRestart: [], postRollingRestart: [] });
    const every = good.replace('    nodes:\n', '    hooks:\n      preSwitchover: ["a"]\n      postPromotion: ["b {newPrimary}"]\n      preRollingRestart: ["c"]\n      postRollingRestart: ["d"]\n      postSwitchover: ["e"]\n    nodes:\n');
    expect(findCluster(parseInventory(every), 'cache-a').hooks).toMatchObject({ preSwitchover: ['a'], postPromotion: ['b {newPrimary}'], preRollingRestart: ['c'], postRollingRestart: ['d'], postSwitchover: ['e'] });
    expect(findCluster(parseInventory(good), 'cache-a').hooks).toBeUndefined();
    const bad = good.replace('    nodes:\n', '    hooks:\n      preFailover: "not a list"\n      onFailover: ["x"]\n    nodes:\n');
    const p = problems(bad).map((x) => `${x.path}: ${x.message}`).join('\n');
    expect(p).toMatch(/clusters\[0\]\.hooks\.preFailover/);
    expect(p).toMatch(/onFailover/);
  });

  it('hosts: "[::1]" is accepted without its brackets; a host with a port, spaces or stray brackets is refused at load', () => {
    const v6 = parseInventory(good.replace('host: 10.0.0.1', 'host: "[::1]"').replace('host: 10.0.0.2', 'host: "fe80::2"'));
    expect(v6.clusters[0].nodes.map((n) => n.host)).toEqual(['::1', 'fe80::2']);
    const text = (t: string) => problems(t).map((x) => `${x.path}: ${x.message}`).join('\n');
    expect(text(good.replace('host: 10.0.0.1', 'host: "10.0.0.1:6379"'))).toMatch(/nodes\[0\]\.host: "10\.0\.0\.1:6379" carries a port: write the host alone and the port in port:/);
    expect(text(good.replace('host: 10.0.0.1', 'host: "[::1"'))).toMatch(/nodes\[0\]\.host: "\[::1" is not a host name or address/);
    expect(text(good.replace('host: 10.0.0.1', 'host: "db one"'))).toMatch(/is not a host name or address/);
    expect(text(good.replace('host: 10.0.0.1', 'host: "db:one:x"'))).toMatch(/is neither a host name nor an IPv6 address/);
  });

  it('names file, line and field of an unknown field', () => {
    const p = problems(good.replace('promotion: prefer', 'promotoin: prefer'));
    expect(p).toEqual([{ line: 8, path: 'clusters[0].nodes[1].promotoin', message: 'unknown field' }]);
    const e = (() => {
      try {
        parseInventory(good.replace('engine: redis', 'engine: redis\n    colour: blue'), 'inv.yaml');
      } catch (x) {
        return x as Error;
      }
    })();
    expect(e?.message).toContain('inv.yaml:4: clusters[0].colour: unknown field');
  });

  it('rejects duplicate node names, duplicate addresses and duplicate YAML keys with lines', () => {
    const dup = good.replace('id: cache-a-2, host: 10.0.0.2', 'id: cache-a-1, host: 10.0.0.2');
    expect(problems(dup)).toEqual([expect.objectContaining({ line: 8, path: 'clusters[0].nodes[1].id', message: expect.stringContaining('duplicate node name "cache-a-1"') })]);
    const sameAddr = good.replace('host: 10.0.0.2', 'host: 10.0.0.1');
    expect(problems(sameAddr)[0].message).toMatch(/address 10.0.0.1:6379 is also node cache-a-1/);
    expect(problems(good.replace('    engine: redis\n', '    engine: redis\n    engine: redis\n'))[0]).toEqual(expect.objectContaining({ line: 4 }));
  });

  it('rejects bad values and an inline password', () => {
    expect(problems(good.replace('port: 6379, promotion', 'port: 70000, promotion'))[0]).toEqual(expect.objectContaining({ line: 8, path: 'clusters[0].nodes[1].port' }));
    expect(problems(good.replace('{ env: CACHE_A_PASSWORD }', 'hunter2'))[0]).toEqual(
      expect.objectContaining({ line: 5, path: 'clusters[0].credentials.password', message: expect.stringMatching(/env.*file/) }),
    );
    expect(problems(good.replace('engine: redis', 'engine: cassandra'))[0].path).toBe('clusters[0].engine');
    expect(problems(good.replace('name: cache-a', 'name: Cache A'))[0].path).toBe('clusters[0].name');
  });

  it('policy.allowDegraded: false by default, true when set, a bad value one typed line at load', () => {
    expect(parseInventory(good, 'inv.yaml').clusters[0].policy.allowDegraded).toBe(false);
    const withPolicy = (v: string) => good.replace('    nodes:', `    policy:\n      allowDegraded: ${v}\n    nodes:`);
    expect(parseInventory(withPolicy('true'), 'inv.yaml').clusters[0].policy.allowDegraded).toBe(true);
    let err: unknown;
    try {
      parseInventory(withPolicy('"yes"'), 'inv.yaml');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InventoryError);
    const e = err as InventoryError;
    expect(e.type).toBe('InvalidInventory');
    expect(e.problems).toEqual([{ line: 7, path: 'clusters[0].policy.allowDegraded', message: expect.stringMatching(/^must be true or false/) }]);
    expect(e.message.split('\n')).toHaveLength(2);
  });

  const mysqlGood = `clusters:
  - name: db-a
    engine: mysql
    flavor: mariadb
    credentials:
      username: handover
      password: { env: DB_A_PW }
    replicationCredentials:
      username: repl
      password: { file: /etc/handover/repl }
    routingHook: "haproxy-move {host}:{port}"
    controller:
      type: local
      binary: /usr/sbin/mariadbd
      configFile: /srv/{node}/my.cnf
    nodes:
      - { id: db-a-1, host: 10.0.1.1, port: 3306 }
      - { id: db-a-2, host: 10.0.1.2, port: 3306, promotion: never }
`;

  it('parses a mysql cluster (flavor, automation and replication accounts, routing hook, local mariadbd controller)', () => {
    const c = findCluster(parseInventory(mysqlGood), 'db-a');
    expect(c.engine).toBe('mysql');
    expect(c.flavor).toBe('mariadb');
    expect(c.replicationCredentials?.username).toBe('repl');
    expect(c.routingHook).toBe('haproxy-move {host}:{port}');
    expect(c.controller).toEqual(expect.objectContaining({ type: 'local', binary: '/usr/sbin/mariadbd', configFile: '/srv/{node}/my.cnf' }));
    expect(c.policy.fenceGraceMs).toBe(2000);
    expect(c.policy.maxLagTransactions).toBe(1000);
    expect(findNode(c, 'db-a-2').promotion).toBe('never');
    const command = mysqlGood.replace(/    controller:\n(      .*\n)+?(?=    nodes:)/, '    controller:\n      type: command\n      restart: "systemctl restart mariadb@{node}"\n');
    expect(findCluster(parseInventory(command), 'db-a').controller).toEqual(expect.objectContaining({ type: 'command', autoRestart: true }));
  });

  it('rejects mysql clusters missing what the runbooks need, and redis-only or mysql-only fields on the wrong engine', () => {
    const paths = (text: string) => problems(text).map((p) => p.path);
    expect(paths(mysqlGood.replace('    flavor: mariadb\n', ''))).toContain('clusters[0].flavor');
    expect(paths(mysqlGood.replace('      username: handover\n', ''))).toContain('clusters[0].credentials');
    expect(paths(mysqlGood.replace(/    replicationCredentials:\n.*\n.*\n/, ''))).toContain('clusters[0].replicationCredentials');
    expect(paths(mysqlGood.replace('    flavor: mariadb\n', '    flavor: mariadb\n    topology: sentinel\n'))).toContain('clusters[0].topology');
    expect(paths(mysqlGood.replace('      binary: /usr/sbin/mariadbd\n', ''))).toContain('clusters[0].controller.binary');
    expect(paths(mysqlGood.replace('    flavor: mariadb', '    flavor: postgres'))).toContain('clusters[0].flavor');
    expect(paths(good.replace('    credentials:', '    routingHook: "x"\n    credentials:'))).toContain('clusters[0].routingHook');
    expect(paths(good.replace('    credentials:', '    flavor: mariadb\n    credentials:'))).toContain('clusters[0].flavor');
  });

  it('refuses flavor: mysql8 when the inventory loads, with one typed line naming file, line and field', () => {
    const text = mysqlGood.replace('    flavor: mariadb', '    flavor: mysql8');
    let err: unknown;
    try {
      parseInventory(text, 'inv.yaml');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InventoryError);
    const e = err as InventoryError;
    expect(e.type).toBe('InvalidInventory');
    expect(e.problems).toEqual([{ line: 4, path: 'clusters[0].flavor', message: MYSQL8_REFUSED }]);
    expect(MYSQL8_REFUSED).not.toContain('\n');
    expect(e.message.split('\n')[1]).toBe(`  inv.yaml:4: clusters[0].flavor: ${MYSQL8_REFUSED}`);
    expect(e.message).toMatch(/use flavor: mariadb/);
  });

  it('resolves secrets from env or file, naming only the reference on failure', () => {
    expect(resolveSecret({ env: 'X_PW' }, 'pw', { X_PW: 's3cret' })).toBe('s3cret');
    expect(() => resolveSecret({ env: 'X_PW' }, 'cluster a password', {})).toThrow('cluster a password: environment variable X_PW is not set on the worker');
    const dir = mkdtempSync(path.join(os.tmpdir(), 'inv-'));
    writeFileSync(path.join(dir, 'pw'), 's3cret\n');
    expect(resolveSecret({ file: path.join(dir, 'pw') }, 'pw')).toBe('s3cret');
    expect(() => resolveSecret({ file: path.join(dir, 'missing') }, 'pw')).toThrow(/cannot read secret file .*missing.*ENOENT/);
  });
});
