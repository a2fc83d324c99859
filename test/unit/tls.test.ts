/** TLS to the databases: the inventory's tls blocks, their merge, and the TLS clauses and tool flags built from them. */
import { describe, expect, it } from 'vitest';
import { mergeTls, nodeTls, sentinelTls } from '../../activities/tls';
import { mariadb, mysql8 } from '../../activities/mysql/flavor';
import { redisCliArgs } from '../../activities/backup/redis';
import { dumpArgs, mysqlClientTlsArgs } from '../../activities/backup/mysql';
import { InventoryError, findCluster, parseInventory } from '../../inventory/load';

const inv = (tls: string, nodeTlsYaml = '', extra = '') => `clusters:
  - name: cache-a
    engine: redis
${extra}${tls}    nodes:
      - { id: cache-a-1, host: 10.0.0.1, port: 6380${nodeTlsYaml} }
      - { id: cache-a-2, host: 10.0.0.2, port: 6380 }
`;

function problems(text: string): string {
  try {
    parseInventory(text, 'inv.yaml');
  } catch (e) {
    expect(e).toBeInstanceOf(InventoryError);
    return (e as InventoryError).message;
  }
  throw new Error('expected an InventoryError');
}

describe('inventory tls', () => {
  it('a cluster block applies to every node, a node block overrides it field by field, verify defaults to true', () => {
    const c = findCluster(parseInventory(inv('    tls: { ca: /etc/ca.pem, cert: /etc/c.pem, key: /etc/c.key }\n', ', tls: { serverName: one.example, verify: false }')), 'cache-a');
    expect(nodeTls(c, 'cache-a-2')).toEqual({ ca: '/etc/ca.pem', cert: '/etc/c.pem', key: '/etc/c.key', verify: true, serverName: undefined, replicationCa: undefined });
    expect(nodeTls(c, 'cache-a-1')).toMatchObject({ ca: '/etc/ca.pem', serverName: 'one.example', verify: false });
  });

  it('no tls anywhere: plaintext; a node block alone turns TLS on for that node', () => {
    const plain = findCluster(parseInventory(inv('')), 'cache-a');
    expect(nodeTls(plain, 'cache-a-1')).toBeUndefined();
    const one = findCluster(parseInventory(inv('', ', tls: { ca: /etc/ca.pem }')), 'cache-a');
    expect(nodeTls(one, 'cache-a-1')).toMatchObject({ ca: '/etc/ca.pem', verify: true });
    expect(nodeTls(one, 'cache-a-2')).toBeUndefined();
  });

  it('the sentinel block overrides the cluster tls for Sentinel connections', () => {
    const text = `clusters:
  - name: cache-s
    engine: redis
    topology: sentinel
    tls: { ca: /etc/ca.pem }
    sentinel:
      masterName: m
      tls: { ca: /etc/sentinel-ca.pem, serverName: sentinels.example }
      nodes: [{ id: s1, host: 10.0.0.9, port: 26380 }]
    nodes:
      - { id: cache-s-1, host: 10.0.0.1, port: 6380 }
`;
    const c = findCluster(parseInventory(text), 'cache-s');
    expect(sentinelTls(c)).toMatchObject({ ca: '/etc/sentinel-ca.pem', serverName: 'sentinels.example', verify: true });
    expect(nodeTls(c, 'cache-s-1')).toMatchObject({ ca: '/etc/ca.pem' });
  });

  it('validation names the field: cert without key, unknown field, replicationCa outside mysql', () => {
    expect(problems(inv('    tls: { ca: /etc/ca.pem, cert: /etc/c.pem }\n'))).toMatch(/tls\.key.*both cert and key/);
    expect(problems(inv('', ', tls: { key: /etc/c.key }'))).toMatch(/nodes\[0\]\.tls\.cert: .*both cert and key/);
    expect(problems(inv('    tls: { ca: /etc/ca.pem, password: x }\n'))).toMatch(/tls.*password/);
    expect(problems(inv('    tls: { ca: /etc/ca.pem, replicationCa: /etc/ca.pem }\n'))).toMatch(/tls\.replicationCa.*only engine: mysql/);
    expect(problems(inv('    tls: { verify: "no" }\n'))).toMatch(/tls\.verify/);
  });

  it('mergeTls ignores undefined overrides', () => {
    expect(mergeTls({ ca: '/a', verify: false }, { serverName: 'x' })).toMatchObject({ ca: '/a', verify: false, serverName: 'x' });
  });
});

describe('TLS in replication and tools', () => {
  const src = { host: '10.0.0.1', port: 3306, user: 'repl', password: 'pw' };
  it('CHANGE MASTER carries MASTER_SSL, the CA as the replica reads it, and the verification flag', () => {
    const ch = mariadb.changeSource({ ...src, ssl: { ca: '/etc/mysql/ca.pem', verify: true } });
    expect(ch.sql).toMatch(/MASTER_SSL = 1, MASTER_SSL_CA = \?, MASTER_SSL_VERIFY_SERVER_CERT = 1$/);
    expect(ch.params).toEqual(['10.0.0.1', 3306, 'repl', 'pw', '/etc/mysql/ca.pem']);
    expect(mariadb.changeSource({ ...src, ssl: { verify: false } }).sql).toMatch(/MASTER_SSL = 1, MASTER_SSL_VERIFY_SERVER_CERT = 0$/);
    // Without TLS in the inventory the replica's own MASTER_SSL setting is left as it is.
    expect(mariadb.changeSource(src).sql).not.toMatch(/SSL/);
    expect(mysql8.changeSource({ ...src, ssl: { ca: '/ca', verify: true } }).sql).toMatch(/SOURCE_SSL = 1, SOURCE_SSL_CA = \?, SOURCE_SSL_VERIFY_SERVER_CERT = 1$/);
  });

  it('redis-cli and mariadb-dump get TLS flags by path (never file contents)', () => {
    const t = { cluster: 'c', node: 'n', host: '10.0.0.1', port: 6380, password: 'pw' };
    expect(redisCliArgs(t)).not.toContain('--tls');
    expect(redisCliArgs({ ...t, tls: { ca: '/ca.pem', cert: '/c.pem', key: '/c.key', serverName: 'db.example', verify: false } })).toEqual(
      expect.arrayContaining(['--tls', '--cacert', '/ca.pem', '--cert', '/c.pem', '--key', '/c.key', '--sni', 'db.example', '--insecure']),
    );
    expect(mysqlClientTlsArgs({ tls: { ca: '/ca.pem', verify: true } })).toEqual(['--ssl', '--ssl-ca=/ca.pem', '--ssl-verify-server-cert']);
    expect(mysqlClientTlsArgs({ tls: { verify: false, cert: '/c.pem', key: '/c.key' } })).toEqual(['--ssl', '--ssl-cert=/c.pem', '--ssl-key=/c.key', '--skip-ssl-verify-server-cert']);
    expect(dumpArgs({ cluster: 'c', node: 'n', host: 'h', port: 1 }, ['s'])).not.toContain('--ssl');
  });
});
