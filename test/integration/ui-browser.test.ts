/**
 * The Temporal UI as an operator uses it, in Debian's headless Chromium driven by playwright-core: a real
 * switchover on real redis-server processes, then the dev server's UI filtered by the HandoverCluster search
 * attribute, the run opened, and the step summaries, the static summary/details and the current details found
 * on the page. Screenshots go to test-artifacts/.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { runSwitchover } from '../../client/commands/switchover';
import { loadInventory } from '../../inventory/load';
import { startRedisFleet, type RedisFleet } from '../../sandbox/redis';
import { captureIO, startTestWorker, type TestWorker } from '../helpers';

const CHROMIUM = process.env.HANDOVER_CHROMIUM ?? '/usr/bin/chromium';
const ARTIFACTS = path.resolve(__dirname, '..', '..', 'test-artifacts');

describe('Temporal UI (headless Chromium)', () => {
  let fleet: RedisFleet;
  let other: RedisFleet;
  let tw: TestWorker;
  let browser: Browser;
  let page: Page;
  const ui = inject('temporalUiUrl');

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    fleet = await startRedisFleet({ cluster: 'ui-cache' });
    other = await startRedisFleet({ cluster: 'ui-other' });
    const inventory = path.join(fleet.baseDir, 'both.yaml');
    writeFileSync(inventory, fleet.inventoryYaml() + other.inventoryYaml().replace(/^clusters:\n/, ''));
    tw = await startTestWorker({ inventory: () => loadInventory(inventory) });
    const opts = { address: tw.address, taskQueue: tw.taskQueue, inventory, wait: true };
    // One run on the cluster under test, one on another cluster that the filter must leave out.
    for (const [cluster, to] of [['ui-cache', 'ui-cache-2'], ['ui-other', undefined]] as const) {
      const io = captureIO();
      const r = await runSwitchover({ ...opts, cluster, to }, io);
      expect(r.exitCode, io.text()).toBe(0);
    }
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
    page = await browser.newPage({ viewport: { width: 1600, height: 1100 } });
  });
  afterAll(async () => {
    await browser?.close();
    await tw?.stop();
    await fleet?.stop();
    await other?.stop();
  });

  it('filters runs by HandoverCluster, opens the run, shows every step summary and the run summary', async () => {
    // 1. The workflow list, filtered by the cluster search attribute (the UI keeps its filter in ?query=).
    await page.goto(`${ui}/namespaces/default/workflows?query=${encodeURIComponent('HandoverCluster="ui-cache"')}`);
    await expect.poll(async () => page.getByRole('link', { name: 'handover-ui-cache', exact: true }).count(), { timeout: 20_000 }).toBeGreaterThan(0);
    const list = await page.innerText('main');
    expect(list).toContain('HandoverCluster = "ui-cache"');
    expect(list).toMatch(/\b1\s+Workflow\b/);
    expect(list).toMatch(/COMPLETED\s+handover-ui-cache\s+[0-9a-f-]{36}\s+switchover/);
    expect(list).not.toContain('handover-ui-other');
    await page.screenshot({ path: path.join(ARTIFACTS, 'ui-browser-list.png'), fullPage: true });

    // 2. Open the run: its timeline names every activity with the step summary the workflow gave it.
    await page.getByRole('link', { name: 'handover-ui-cache', exact: true }).first().click();
    await page.waitForURL(/\/workflows\/handover-ui-cache\/[0-9a-f-]+\//);
    const summaries = [
      'probeRedisCluster • probe every node of ui-cache',
      'waitForRedisCatchUp • wait for ui-cache-2 to catch up with ui-cache-1',
      'vetoRedisHandover • re-check the decision before the point of no return',
      'ensureRedisHandedOver • hand ui-cache-1 -> ui-cache-2 over (pause-promote; writes paused at most 5000 ms)',
      'ensureRedisReplicaOf • make ui-cache-3 a replica of ui-cache-2',
      'ensureRedisReplicaOf • make ui-cache-1 a replica of ui-cache-2',
      'verifyRedisTopology • verify one primary (ui-cache-2), replicas linked and converging',
    ];
    await expect.poll(async () => page.innerText('main'), { timeout: 20_000 }).toContain(summaries[summaries.length - 1]);
    const run = await page.innerText('main');
    for (const s of summaries) expect(run).toContain(s);
    expect(run).toMatch(/COMPLETED\s+handover-ui-cache/);
    await page.screenshot({ path: path.join(ARTIFACTS, 'ui-browser-run.png'), fullPage: true });

    // 3. User metadata: the static summary and details the CLI set at start, and the current details (phase).
    await page.getByRole('link', { name: 'User Metadata' }).or(page.getByRole('tab', { name: 'User Metadata' })).first().click();
    // The UI renders this markdown in sandboxed iframes (one per field), so read the frames' text.
    const rendered = async () => {
      const texts = await Promise.all(page.frames().filter((f) => f.url().includes('/render?')).map((f) => f.innerText('body').catch(() => '')));
      return texts.map((t) => t.trim());
    };
    await expect.poll(async () => page.innerText('main'), { timeout: 15_000 }).toMatch(/Summary\s+Details\s+Current Details/);
    await expect.poll(rendered, { timeout: 15_000 }).toEqual(['switchover of ui-cache to ui-cache-2', 'Planned switchover of cluster ui-cache to ui-cache-2.', 'switchover on ui-cache: done']);
    await page.screenshot({ path: path.join(ARTIFACTS, 'ui-browser-metadata.png'), fullPage: true });

    // 4. Search attributes: cluster, runbook and the final phase.
    await page.getByRole('link', { name: 'Search Attributes' }).or(page.getByRole('tab', { name: 'Search Attributes' })).first().click();
    await expect.poll(async () => page.innerText('main'), { timeout: 10_000 }).toContain('HandoverPhase');
    const sa = await page.innerText('main');
    expect(sa).toMatch(/HandoverCluster[\s\S]*ui-cache/);
    expect(sa).toMatch(/HandoverRunbook[\s\S]*switchover/);
    expect(sa).toMatch(/HandoverPhase[\s\S]*done/);
  });
});
