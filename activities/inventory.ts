/** Engine-agnostic inventory look-ups, so a workflow can route by engine. Read-only; no secrets returned. */
import { findCluster } from '../inventory/load';
import type { Inventory } from '../inventory/schema';
import { toFailure } from './activity';

export interface DescribeClusterResult {
  cluster: string;
  engine: string;
  topology: string;
  nodes: string[];
}

export function createInventoryActivities(deps: { inventory: () => Inventory }) {
  return {
    /** The cluster's engine, topology and node names, from the worker's inventory. UnknownCluster if absent. */
    async describeCluster({ cluster }: { cluster: string }): Promise<DescribeClusterResult> {
      try {
        const c = findCluster(deps.inventory(), cluster);
        return { cluster: c.name, engine: c.engine, topology: c.topology, nodes: c.nodes.map((n) => n.id) };
      } catch (e) {
        throw toFailure(e);
      }
    },
  };
}
