/**
 * The MySQL/MariaDB monitor's detection loop (activities/monitor.ts): `watchMysqlCluster` runs the failover probe
 * (activities/mysql/failover.ts) every `probeIntervalMs` over connections it keeps open, decides each round with
 * core/monitor-round.ts and returns only when the monitor workflow has something to do. Read-only: a retry
 * resumes from the heartbeat.
 */
import type mysql from 'mysql2/promise';
import { mysqlMonitorRound, probeDeadlineMs } from '../../core/monitor-round';
import type { MysqlFailoverProbe } from '../../core/mysql/failover';
import { activity } from '../activity';
import { NodePool, watchLoop, type WatchInput, type WatchResult } from '../monitor';
import { classifyMysqlError, connectMysql as defaultConnect, mysqlClusterSpec, mysqlTarget } from './conn';
import { failoverProbeOf, probeFailoverNode, probeFailoverNodes } from './failover';
import { flavorOf } from './flavor';
import type { MysqlActivityDeps } from './node';

export function createMysqlMonitorActivities(deps: MysqlActivityDeps) {
  const env = deps.env ?? process.env;
  const connect = deps.connectMysql ?? defaultConnect;
  return {
    /** The monitor's detection loop for a MySQL/MariaDB cluster (see activities/monitor.ts). */
    watchMysqlCluster: activity(async (input: WatchInput): Promise<WatchResult<MysqlFailoverProbe>> => {
      const pool = new NodePool<mysql.Connection>(
        async (key) => {
          const [cluster, node] = key.split('\u0000');
          const c = mysqlClusterSpec(deps.inventory(), cluster);
          return connect(mysqlTarget(c, node, env));
        },
        (conn) => conn.destroy(),
      );
      const probe = async (): Promise<MysqlFailoverProbe> => {
        const c = mysqlClusterSpec(deps.inventory(), input.cluster);
        const fl = flavorOf(c.flavor);
        const deadline = probeDeadlineMs(c.policy);
        const one = (cc: typeof c, node: string) => {
          const n = cc.nodes.find((x) => x.id === node)!;
          const key = [cc.name, n.id, n.host, n.port].join('\u0000');
          return probeFailoverNode(cc, node, (fn) => pool.use(key, fn, deadline).catch((e: unknown) => Promise.reject(classifyMysqlError(e, { cluster: cc.name, node }))), fl);
        };
        return failoverProbeOf(input.cluster, c, await probeFailoverNodes(c, one));
      };
      return watchLoop(input, { probe, decide: mysqlMonitorRound, failpoint: deps.failpoint, close: () => pool.closeAll() });
    }),
  };
}
