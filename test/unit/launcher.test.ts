/**
 * The local controller's launcher prefix (how the multi-host lab starts a node inside its namespace) and the
 * scratch server's address for a Redis restore into a node: pure or local-only (no packet is sent).
 */
import { describe, expect, it } from 'vitest';
import { launcherArgs } from '../../activities/controllers';
import { localAddressToward } from '../../activities/backup/scratch';
import { parseInventory } from '../../inventory/load';

describe('local controller launcher', () => {
  it('splits on spaces and fills {node} and {host}; none is an empty prefix', () => {
    expect(launcherArgs('/x/netns-exec.sh {host}', 'c-1', '10.77.11.11')).toEqual(['/x/netns-exec.sh', '10.77.11.11']);
    expect(launcherArgs('ip  netns exec ns-{node}', 'c-2', undefined)).toEqual(['ip', 'netns', 'exec', 'ns-c-2']);
    expect(launcherArgs(undefined, 'c-1', '10.0.0.1')).toEqual([]);
  });
  it('is a field of the local controller only', () => {
    const inv = (controller: string) => `clusters:\n  - name: c\n    engine: redis\n    controller: ${controller}\n    nodes:\n      - { id: c-1, host: 127.0.0.1, port: 6379 }\n`;
    const c = parseInventory(inv('{ type: local, configFile: "/srv/{node}.conf", launcher: "sudo -u redis" }')).clusters[0];
    expect(c.controller).toMatchObject({ type: 'local', launcher: 'sudo -u redis' });
    expect(() => parseInventory(inv('{ type: command, restart: "x", launcher: "sudo" }'))).toThrow(/launcher/);
  });
});

describe('scratch address toward a node', () => {
  it('is loopback for a node on loopback, and a local address of this machine otherwise', async () => {
    expect(await localAddressToward('127.0.0.1')).toBe('127.0.0.1');
    expect(await localAddressToward('127.0.0.2')).toBe('127.0.0.1');
    expect(await localAddressToward('localhost')).toBe('127.0.0.1');
  });
});
