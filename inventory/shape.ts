/**
 * One inventory truth: the CLI and the worker may each hold an inventory file, and when they disagree on a cluster
 * the worker's wins silently (it runs the runbook). The shape of a cluster is its definition as the loader
 * parsed it, flattened to `path -> value` (defaults applied, so two files saying the same thing in different
 * words agree). It carries no secret: the inventory names secrets (an environment variable, a file), it does
 * not hold them. Pure: the CLI compares its shape with the one the worker returns and names what differs.
 */
import { createHash } from 'node:crypto';
import type { ClusterSpec } from './schema';

export type ClusterShape = Record<string, string>;

/** Flattened `path -> JSON value` of the parsed cluster definition, paths in a stable order. */
export function clusterShape(spec: ClusterSpec): ClusterShape {
  const out: ClusterShape = {};
  const walk = (v: unknown, at: string) => {
    if (Array.isArray(v)) {
      if (v.length === 0) out[at] = '[]';
      v.forEach((x, i) => walk(x, `${at}[${i}]`));
    } else if (v !== null && typeof v === 'object') {
      const keys = Object.keys(v as object).filter((k) => (v as Record<string, unknown>)[k] !== undefined).sort();
      if (keys.length === 0) out[at] = '{}';
      for (const k of keys) walk((v as Record<string, unknown>)[k], at ? `${at}.${k}` : k);
    } else if (v !== undefined) out[at] = JSON.stringify(v);
  };
  walk(spec, '');
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** A short hash of a shape (the first 12 hex digits of its SHA-256). */
export function shapeHash(shape: ClusterShape): string {
  return createHash('sha256').update(JSON.stringify(shape)).digest('hex').slice(0, 12);
}

/** What differs between this side's shape and the worker's, one phrase per path (at most `max`, then a count). */
export function shapeDifferences(here: ClusterShape, worker: ClusterShape, max = 4): string[] {
  const paths = [...new Set([...Object.keys(here), ...Object.keys(worker)])].sort();
  const diffs = paths
    .filter((p) => here[p] !== worker[p])
    .map((p) => (here[p] === undefined ? `${p} only on the worker (${worker[p]})` : worker[p] === undefined ? `${p} only here (${here[p]})` : `${p} is ${here[p]} here, ${worker[p]} on the worker`));
  return diffs.length > max ? [...diffs.slice(0, max), `and ${diffs.length - max} more`] : diffs;
}
