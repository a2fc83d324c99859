/** The PENDING RESTART column's rules (core/pending-restart.ts): pure. */
import { describe, expect, it } from 'vitest';
import { executableReason, mysqlRestartOnlyDrift, normalizeVariable, parseOptionFile, redisRestartOnlyDrift, versionFromBinaryOutput } from '../../core/pending-restart';
import { parseRedisConf } from '../../core/redis/config-drift';

describe('pending restart', () => {
  it('reads the version a binary reports', () => {
    expect(versionFromBinaryOutput('Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=1')).toBe('7.0.15');
    expect(versionFromBinaryOutput('Valkey server v=9.1.2 sha=00000000:0')).toBe('9.1.2');
    expect(versionFromBinaryOutput('/usr/sbin/mariadbd  Ver 10.11.14-MariaDB-0+deb12u2 for debian-linux-gnu on x86_64 (Debian 12)')).toBe('10.11.14');
    expect(versionFromBinaryOutput('nothing')).toBeUndefined();
  });

  it('an executable replaced on disk: another version, the same version, or gone; not replaced: nothing', () => {
    expect(executableReason('redis 7.0.15', { path: '/usr/bin/redis-server', replaced: false })).toBeUndefined();
    expect(executableReason('7.0.15', { path: '/usr/bin/redis-server', replaced: true, versionOnDisk: '7.2.4' })).toBe('the binary on disk (/usr/bin/redis-server) is 7.2.4, it runs 7.0.15');
    expect(executableReason('10.11.14-MariaDB', { path: '/usr/sbin/mariadbd', replaced: true, versionOnDisk: '10.11.14' })).toMatch(/replaced on disk since it started \(same version 10\.11\.14\)/);
    expect(executableReason('7.0.15', { path: '/x/redis-server', replaced: true })).toMatch(/replaced or removed on disk/);
  });

  it('Redis: only restart-only settings, file against runtime', () => {
    const file = parseRedisConf('port 6379\ndatabases 32\nio-threads 1\nmaxmemory-policy allkeys-lru\n');
    expect(redisRestartOnlyDrift(file, { databases: '16', 'io-threads': '1', 'maxmemory-policy': 'noeviction' })).toEqual(['databases is 32 in the config file, 16 running (read at start only)']);
    expect(redisRestartOnlyDrift(file, { databases: '32' })).toEqual([]);
  });

  it('MariaDB: read-only variables set in the server sections, values normalized, paths and log_bin not compared', () => {
    const file = parseOptionFile('[client]\nport=1\n[mysqld]\nserver-id = 3\ninnodb-buffer-pool-instances=4\ninnodb_log_buffer_size = 16M\nskip-name-resolve\nlog-bin = mysql-bin\ndatadir=/srv/db-1\n[mariadbd]\nloose-performance_schema=OFF\n');
    expect([...file.keys()]).toEqual(['server_id', 'innodb_buffer_pool_instances', 'innodb_log_buffer_size', 'skip_name_resolve', 'log_bin', 'datadir', 'performance_schema']);
    expect(normalizeVariable('16M')).toBe(String(16 * 1024 * 1024));
    const runtime = Object.fromEntries(
      Object.entries({ innodb_buffer_pool_instances: '1', innodb_log_buffer_size: String(16 * 1024 * 1024), skip_name_resolve: 'ON', log_bin: 'ON', datadir: '/srv/db-1/', performance_schema: 'OFF' }).map(([k, value]) => [k, { value }]),
    );
    expect(mysqlRestartOnlyDrift(file, runtime)).toEqual(['innodb_buffer_pool_instances is 4 in the option file, 1 running (read-only variable)']);
    // A setting below the variable's minimum runs at the minimum: a restart would not change it.
    const clamped = parseOptionFile('[mysqld]\ninnodb_log_buffer_size = 1M\n');
    expect(mysqlRestartOnlyDrift(clamped, { innodb_log_buffer_size: { value: '2097152', min: '262144', max: '18446744073709551615', block: '1024' } })).toEqual(['innodb_log_buffer_size is 1M in the option file, 2097152 running (read-only variable)']);
    expect(mysqlRestartOnlyDrift(clamped, { innodb_log_buffer_size: { value: '2097152', min: '2097152', max: '18446744073709551615', block: '1024' } })).toEqual([]);
  });
});
