/**
 * Restore of a Redis Cluster backup into a scratch cluster (pure): slot lists as CLUSTER NODES prints them
 * ("0-5460 10923"), the slots a freshly started node still lacks, and whether the running scratch cluster
 * matches the manifest (every node's view agrees, each node owns exactly its shard's slots and holds its
 * shard's key count). The I/O is in activities/backup/scratch-redis-cluster.ts.
 */

export const SLOTS = 16384;

/** The slots of a CLUSTER NODES slot list ("0-5460 10923"); migration entries ("[123->-abc]") are ignored. */
export function parseSlots(list: string): Set<number> {
  const out = new Set<number>();
  for (const part of list.trim().split(/\s+/)) {
    if (!part || part.startsWith('[')) continue;
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) throw new Error(`not a slot range: ${part}`);
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (a > b || b >= SLOTS) throw new Error(`not a slot range: ${part}`);
    for (let s = a; s <= b; s++) out.add(s);
  }
  return out;
}

/** A slot set as ranges, lowest first ("0-5460 10923"); "" for none. */
export function formatSlots(slots: Iterable<number>): string {
  const sorted = [...new Set(slots)].sort((x, y) => x - y);
  const out: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j] + 1) j++;
    out.push(sorted[i] === sorted[j] ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return out.join(' ');
}

/**
 * The shards' slot lists as a plan: refused when two shards list the same slot or a list does not parse;
 * `fullCoverage` false when some slot is in no shard (the scratch cluster then cannot require full coverage).
 */
export function planScratchCluster(shards: { slots: string }[]): { ok: true; fullCoverage: boolean } | { ok: false; refusal: string } {
  const owner = new Map<number, number>();
  for (const [i, s] of shards.entries()) {
    let set: Set<number>;
    try {
      set = parseSlots(s.slots);
    } catch (e) {
      return { ok: false, refusal: `shard ${i + 1} (${s.slots}): ${(e as Error).message}` };
    }
    if (set.size === 0) return { ok: false, refusal: `shard ${i + 1} lists no slots` };
    for (const slot of set) {
      const o = owner.get(slot);
      if (o !== undefined) return { ok: false, refusal: `shards ${o + 1} (${shards[o].slots}) and ${i + 1} (${s.slots}) both list slot ${slot}` };
      owner.set(slot, i);
    }
  }
  return { ok: true, fullCoverage: owner.size === SLOTS };
}

/**
 * What a freshly started node must still be given: the shard's slots it does not own yet. A node that loaded an
 * RDB claims the slots its keys hash to ("Taking responsibility for slot"); a claimed slot outside the shard's
 * list is a refusal (the RDB holds keys of another shard).
 */
export function slotsToAdd(want: string, owned: string): { add: number[] } | { refusal: string } {
  const w = parseSlots(want);
  const o = parseSlots(owned);
  const extra = [...o].filter((s) => !w.has(s));
  if (extra.length) return { refusal: `it holds keys in slots ${formatSlots(extra)} outside its recorded slots ${want}` };
  return { add: [...w].filter((s) => !o.has(s)) };
}

/** One CLUSTER NODES line. */
export interface ClusterNodeLine {
  id: string;
  address: string;
  flags: string[];
  master: string;
  link: string;
  slots: string;
}

export function parseClusterNodes(text: string): ClusterNodeLine[] {
  return text
    .trim()
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => {
      const f = l.trim().split(' ');
      return { id: f[0], address: f[1].split('@')[0], flags: f[2].split(','), master: f[3], link: f[7], slots: formatSlots(parseSlots(f.slice(8).join(' '))) };
    });
}

/** What one scratch node says: its own ID, CLUSTER INFO's state, its CLUSTER NODES view and its DBSIZE. */
export interface ScratchNodeView {
  address: string;
  myId: string;
  state: string;
  nodes: ClusterNodeLine[];
  dbsize: number;
}

/**
 * Whether the scratch cluster is what the manifest records, node i serving shard i: every node says
 * cluster_state ok and lists exactly the N nodes, each a connected master (no fail/handshake flag) owning
 * exactly its shard's slots. Returns the first disagreement (undefined: converged). DBSIZE is checked apart
 * (checkScratchKeys): keys do not converge, a mismatch is final.
 */
export function scratchClusterDisagreement(shards: { slots: string }[], views: ScratchNodeView[]): string | undefined {
  const want = new Map(views.map((v, i) => [v.myId, formatSlots(parseSlots(shards[i].slots))]));
  for (const v of views) {
    if (v.state !== 'ok') return `${v.address} says cluster_state:${v.state || '?'}`;
    if (v.nodes.length !== views.length) return `${v.address} lists ${v.nodes.length} nodes, not ${views.length}`;
    for (const n of v.nodes) {
      const w = want.get(n.id);
      if (w === undefined) return `${v.address} lists an unknown node ${n.id} (${n.address})`;
      const bad = n.flags.filter((f) => ['fail', 'fail?', 'handshake', 'noaddr', 'slave'].includes(f));
      if (bad.length || !n.flags.includes('master')) return `${v.address} sees ${n.address} as ${n.flags.join(',')}`;
      if (n.link !== 'connected') return `${v.address} sees ${n.address} ${n.link}`;
      if (n.slots !== w) return `${v.address} sees ${n.address} owning ${n.slots || 'no slots'}, not ${w}`;
    }
  }
  return undefined;
}

/** Each node's DBSIZE against its shard's recorded dbsize: the first mismatch, or undefined. */
export function checkScratchKeys(shards: { slots: string; dbsize: number }[], views: { address: string; dbsize: number }[]): string | undefined {
  for (const [i, s] of shards.entries())
    if (views[i].dbsize !== s.dbsize) return `shard ${s.slots} restored into ${views[i].address} holds ${views[i].dbsize} keys, the manifest records ${s.dbsize}`;
  return undefined;
}
