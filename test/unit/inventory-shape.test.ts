import { describe, expect, it } from 'vitest';
import { parseInventory, findCluster } from '../../inventory/load';
import { clusterShape, shapeDifferences, shapeHash } from '../../inventory/shape';
import { inventoryMismatch } from '../../client/worker-read';

const yaml = (port2: number, extra = '') => `clusters:
  - name: cache
    engine: redis
    topology: replication${extra}
    credentials:
      password: { env: CACHE_PASSWORD }
    nodes:
      - { id: cache-1, host: 10.0.0.1, port: 6379 }
      - { id: cache-2, host: 10.0.0.2, port: ${port2} }
`;
const shapeOf = (text: string) => clusterShape(findCluster(parseInventory(text), 'cache'));

describe('inventory shape (one inventory truth)', () => {
  it('the same definition in other words has the same shape and hash; no secret value is in it, only the reference', () => {
    const a = shapeOf(yaml(6379));
    const b = shapeOf(yaml(6379).replace('{ id: cache-2, host: 10.0.0.2, port: 6379 }', '{ port: 6379, host: 10.0.0.2, id: cache-2 }'));
    expect(a).toEqual(b);
    expect(shapeHash(a)).toBe(shapeHash(b));
    expect(a['nodes[1].port']).toBe('6379');
    expect(a['credentials.password.env']).toBe('"CACHE_PASSWORD"');
  });

  it('names each path that differs, and which side has it', () => {
    const here = shapeOf(yaml(6380));
    const worker = shapeOf(yaml(6379));
    expect(shapeDifferences(here, worker)).toEqual(['nodes[1].port is 6380 here, 6379 on the worker']);
    expect(shapeHash(here)).not.toBe(shapeHash(worker));
    expect(inventoryMismatch('cache', 'inv.yaml', here, worker)).toBe('inv.yaml and the worker\'s inventory disagree on cluster cache: nodes[1].port is 6380 here, 6379 on the worker');
    expect(inventoryMismatch('cache', 'inv.yaml', here, undefined)).toBe("cluster cache is in inv.yaml but not in the worker's inventory");
    expect(inventoryMismatch('cache', 'inv.yaml', worker, worker)).toBeUndefined();
  });

  it('caps the list of differences', () => {
    const here = { a: '1', b: '2', c: '3', d: '4', e: '5', f: '6' };
    expect(shapeDifferences(here, {}, 4)).toEqual(['a only here (1)', 'b only here (2)', 'c only here (3)', 'd only here (4)', 'and 2 more']);
  });
});
