/**
 * Continuous split-brain sampling: every node is asked at once, round after round, from before the run starts
 * until the end state is read (through the settle step, where a dead primary returns and is fenced). Every
 * sample counts: two writable nodes in one sample is a split, with no "ask again" filter; a node that does
 * not answer is recorded as such.
 */
import { performance } from 'node:perf_hooks';
import type { EngineProbe, NodeView, SampleStats } from './types';

export class SplitBrainSampler {
  readonly stats: SampleStats = { samples: 0, withDownNode: 0, split: 0, splitExamples: [], maxGapMs: 0 };
  private stopped = false;
  private loop?: Promise<void>;
  private readonly t0 = performance.now();

  constructor(
    private readonly probe: Pick<EngineProbe, 'views' | 'closeViews'>,
    private readonly pauseMs = 10,
  ) {}

  /** Judge one sample (exported logic, so a unit test can feed it views). */
  static judge(views: Record<string, NodeView>): { split: boolean; down: boolean } {
    const v = Object.values(views);
    return { split: v.filter((x) => x === 'writable').length > 1, down: v.includes('down') };
  }

  record(views: Record<string, NodeView>, at = performance.now()): void {
    const { split, down } = SplitBrainSampler.judge(views);
    this.stats.samples++;
    if (down) this.stats.withDownNode++;
    if (split) {
      this.stats.split++;
      if (this.stats.splitExamples.length < 5)
        this.stats.splitExamples.push(`+${Math.round(at - this.t0)}ms ${Object.entries(views).map(([n, x]) => `${n}=${x}`).join(' ')}`);
    }
  }

  start(): this {
    this.loop = (async () => {
      let last = performance.now();
      while (!this.stopped) {
        const views = await this.probe.views();
        const now = performance.now();
        this.stats.maxGapMs = Math.max(this.stats.maxGapMs, Math.round(now - last));
        last = now;
        this.record(views, now);
        await new Promise((r) => setTimeout(r, this.pauseMs));
      }
    })();
    return this;
  }

  async stop(): Promise<SampleStats> {
    this.stopped = true;
    await this.loop;
    this.probe.closeViews();
    return this.stats;
  }
}
