import { describe, expect, it } from 'vitest';
import { configDrift, parseRedisConf, withRole } from '../../core/redis/config-drift';

describe('persist only what Handover changed (core/redis/config-drift.ts)', () => {
  const conf = 'port 6380\n# a comment\nmasterauth "s3cret"\nmin-replicas-to-write 1\nreplicaof 10.0.0.1 6379\n';
  it('parses the last value per key, quotes removed', () => {
    expect(parseRedisConf(conf).get('masterauth')).toBe('s3cret');
    expect(parseRedisConf(conf).get('replicaof')).toBe('10.0.0.1 6379');
  });
  it('names the settings whose runtime value differs from the file; a secret absent from the file is drift when set at runtime', () => {
    expect(configDrift(conf, { masterauth: 's3cret', 'min-replicas-to-write': '1' })).toEqual([]);
    expect(configDrift(conf, { masterauth: 'wrong', 'min-replicas-to-write': '0', appendonly: 'yes' })).toEqual(['masterauth', 'min-replicas-to-write']);
    expect(configDrift('port 1\n', { requirepass: 'x', 'maxmemory-policy': 'noeviction' })).toEqual(['requirepass']);
    expect(configDrift(conf, { masterauth: 'wrong' }, ['masterauth'])).toEqual([]);
  });
  it('changes only the role line', () => {
    expect(withRole(conf, { host: '10.0.0.2', port: 6381 })).toBe('port 6380\n# a comment\nmasterauth "s3cret"\nmin-replicas-to-write 1\nreplicaof 10.0.0.2 6381\n');
    expect(withRole('port 1\nslaveof a 1\n', undefined)).toBe('port 1\n');
  });
});
