/**
 * Loading and validating the YAML inventory. Every error names the file, the line and the field, so the
 * operator can fix it without guessing; duplicate cluster or node names and duplicate addresses are errors.
 */
import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument, isMap, isPair, isScalar, type Node as YamlNode } from 'yaml';
import type { ZodIssue } from 'zod';
import { ErrorType, HandoverError } from '../core/errors';
import { InventorySchema, type ClusterSpec, type Inventory, type NodeSpec } from './schema';

export interface InventoryProblem {
  line?: number;
  path: string;
  message: string;
}

export class InventoryError extends HandoverError {
  constructor(
    readonly file: string,
    readonly problems: InventoryProblem[],
  ) {
    super(
      ErrorType.InvalidInventory,
      `invalid inventory ${file}:\n` + problems.map((p) => `  ${file}:${p.line ?? '?'}: ${p.path || '(top)'}: ${p.message}`).join('\n'),
    );
  }
}

function pathString(path: (string | number)[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}

/** Parse and validate inventory text; `file` is used in messages only. */
export function parseInventory(text: string, file = 'inventory.yaml'): Inventory {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  const lineOf = (node: YamlNode | null | undefined): number | undefined =>
    node?.range ? lineCounter.linePos(node.range[0]).line : undefined;
  if (doc.errors.length > 0) {
    throw new InventoryError(
      file,
      doc.errors.map((e) => ({ line: lineCounter.linePos(e.pos[0]).line, path: '', message: e.message.split('\n')[0] })),
    );
  }
  const raw = doc.toJS() ?? {};
  const parsed = InventorySchema.safeParse(raw);
  if (!parsed.success) {
    throw new InventoryError(file, parsed.error.issues.flatMap((issue) => describeIssue(issue, doc, lineOf)));
  }
  const inv = parsed.data;
  const problems: InventoryProblem[] = [];
  const seenClusters = new Map<string, number>();
  const seenNodes = new Map<string, string>();
  inv.clusters.forEach((c, ci) => {
    const clusterPath = ['clusters', ci];
    if (seenClusters.has(c.name))
      problems.push({ line: lineOf(doc.getIn([...clusterPath, 'name'], true) as YamlNode), path: pathString([...clusterPath, 'name']), message: `duplicate cluster name "${c.name}"` });
    seenClusters.set(c.name, ci);
    const addresses = new Map<string, string>();
    c.nodes.forEach((n, ni) => {
      const nodePath = [...clusterPath, 'nodes', ni];
      if (seenNodes.has(n.id))
        problems.push({
          line: lineOf(doc.getIn([...nodePath, 'id'], true) as YamlNode),
          path: pathString([...nodePath, 'id']),
          message: `duplicate node name "${n.id}" (already in cluster ${seenNodes.get(n.id)})`,
        });
      seenNodes.set(n.id, c.name);
      const addr = `${n.host}:${n.port}`;
      if (addresses.has(addr))
        problems.push({
          line: lineOf(doc.getIn([...nodePath, 'port'], true) as YamlNode),
          path: pathString([...nodePath, 'port']),
          message: `address ${addr} is also node ${addresses.get(addr)}`,
        });
      addresses.set(addr, n.id);
    });
  });
  if (problems.length) throw new InventoryError(file, problems);
  return inv;
}

function describeIssue(issue: ZodIssue, doc: ReturnType<typeof parseDocument>, lineOf: (n: YamlNode | null | undefined) => number | undefined): InventoryProblem[] {
  // Walk to the deepest existing YAML node on the issue's path, for the line number.
  const nodeAt = (path: (string | number)[]): YamlNode | undefined => {
    for (let i = path.length; i >= 0; i--) {
      const n = doc.getIn(path.slice(0, i), true) as YamlNode | undefined;
      if (n) return n;
    }
    return undefined;
  };
  if (issue.code === 'unrecognized_keys') {
    const container = nodeAt(issue.path);
    return issue.keys.map((key) => {
      let line = lineOf(container);
      if (isMap(container)) {
        const pair = container.items.find((p) => isPair(p) && isScalar(p.key) && p.key.value === key);
        if (pair && isScalar(pair.key)) line = lineOf(pair.key);
      }
      return { line, path: pathString([...issue.path, key]), message: 'unknown field' };
    });
  }
  if (issue.code === 'invalid_union') {
    return [{ line: lineOf(nodeAt(issue.path)), path: pathString(issue.path), message: 'must be {env: VAR_NAME} or {file: /path/to/secret}' }];
  }
  return [{ line: lineOf(nodeAt(issue.path)), path: pathString(issue.path), message: issue.message }];
}

export function loadInventory(file: string): Inventory {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new InventoryError(file, [{ path: '', message: `cannot read: ${(e as Error).message}` }]);
  }
  return parseInventory(text, file);
}

/** The default inventory path: --inventory, else $HANDOVER_INVENTORY, else ./inventory.yaml. */
export function inventoryPath(explicit?: string, env: NodeJS.ProcessEnv = process.env): string {
  return explicit ?? env.HANDOVER_INVENTORY ?? 'inventory.yaml';
}

/** The cluster, which must run `engine` (WrongEngine otherwise). */
export function findEngineCluster(inv: Inventory, cluster: string, engine: ClusterSpec['engine']): ClusterSpec {
  const c = findCluster(inv, cluster);
  if (c.engine !== engine) throw new HandoverError(ErrorType.WrongEngine, `cluster ${cluster} is a ${c.engine} cluster, not ${engine}`);
  return c;
}

export function findCluster(inv: Inventory, cluster: string): ClusterSpec {
  const c = inv.clusters.find((x) => x.name === cluster);
  if (!c)
    throw new HandoverError(
      ErrorType.UnknownCluster,
      `unknown cluster "${cluster}" (inventory has: ${inv.clusters.map((x) => x.name).join(', ') || 'no clusters'})`,
    );
  return c;
}

export function findNode(cluster: ClusterSpec, node: string): NodeSpec {
  const n = cluster.nodes.find((x) => x.id === node);
  if (!n)
    throw new HandoverError(
      ErrorType.UnknownNode,
      `unknown node "${node}" in cluster ${cluster.name} (nodes: ${cluster.nodes.map((x) => x.id).join(', ')})`,
    );
  return n;
}
