/**
 * Hooks run real /bin/sh commands with a minimal environment: a hook script that dumps its environment sees
 * PATH, HOME, its placeholders and the variables its cluster's hookEnv names, never the worker's credentials
 * (those the inventory references) nor the codec key, even when hookEnv names them.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createHookActivities } from '../../activities/hooks';
import { parseInventory } from '../../inventory/load';

describe('hook environment', () => {
  it('a failover hook sees its placeholders and the named variables, never a secret', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'hook-env-'));
    const out = path.join(dir, 'env.txt');
    const inv = parseInventory(`clusters:
  - name: cache-h
    engine: redis
    credentials:
      password: { env: CACHE_H_PASSWORD }
    hookEnv: [HAPROXY_SOCKET, CACHE_H_PASSWORD, HANDOVER_CODEC_KEY]
    hooks:
      postFailover: ["env > ${out}"]
    nodes:
      - { id: cache-h-1, host: 127.0.0.1, port: 6390 }
      - { id: cache-h-2, host: 127.0.0.1, port: 6391 }
`);
    const canary = `canary-${Math.random().toString(36).slice(2)}`;
    const codecKey = `codec-${Math.random().toString(36).slice(2)}`;
    const workerEnv = { PATH: process.env.PATH, HOME: '/home/worker', CACHE_H_PASSWORD: canary, HANDOVER_CODEC_KEY: codecKey, AWS_SECRET_ACCESS_KEY: canary, HAPROXY_SOCKET: '/run/haproxy.sock' };
    const acts = createHookActivities({ inventory: () => inv, env: workerEnv });
    const r = await acts.runFailoverHook({ cluster: 'cache-h', kind: 'postFailover', index: 0, oldPrimary: 'cache-h-1', newPrimary: 'cache-h-2' });
    expect(r.exitCode).toBe(0);
    const env = Object.fromEntries(
      readFileSync(out, 'utf8')
        .trim()
        .split('\n')
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
    expect(env).toMatchObject({ HOME: '/home/worker', HAPROXY_SOCKET: '/run/haproxy.sock', HANDOVER_CLUSTER: 'cache-h', HANDOVER_OLD_PRIMARY: 'cache-h-1', HANDOVER_NEW_PRIMARY: 'cache-h-2', HANDOVER_PRIMARY_HOST: '127.0.0.1', HANDOVER_PRIMARY_PORT: '6391' });
    expect(env.PATH).toBe(process.env.PATH);
    const text = readFileSync(out, 'utf8');
    expect(text).not.toContain(canary);
    expect(text).not.toContain(codecKey);
    expect(Object.keys(env)).not.toContain('CACHE_H_PASSWORD');
    expect(Object.keys(env)).not.toContain('AWS_SECRET_ACCESS_KEY');
  });
});
