/**
 * Node controllers: how a node is restarted. Behind one interface so the runbook does not care whether the
 * node is a local process, a systemd unit or a Kubernetes pod (a Kubernetes controller fits the same shape).
 * Readiness is never the controller's word: the runbook checks it on the node itself.
 */
import { exec, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import type Redis from 'ioredis';
import { ErrorType, HandoverError } from '../core/errors';
import type { ControllerSpec, NodeSpec } from '../inventory/schema';

const execAsync = promisify(exec);

export interface RestartRequest {
  node: NodeSpec;
  /** Version to run after the restart, when the roll changes versions. */
  version?: string;
  /** A connected client to the node, for a graceful shutdown; undefined when it is already down. */
  client?: Redis;
}

export interface NodeController {
  restart(req: RestartRequest): Promise<string>;
  /** Restart one Sentinel of the cluster. */
  restartSentinel(req: { id: string; client?: Redis }): Promise<string>;
}

const fill = (template: string, node: string, version?: string) => template.replaceAll('{node}', node).replaceAll('{version}', version ?? '');

export function controllerFor(spec: ControllerSpec | undefined, cluster: string): NodeController {
  if (!spec) throw new HandoverError(ErrorType.PreconditionFailed, `cluster ${cluster} has no controller in the inventory: a rolling restart needs one (local or command)`);
  if (spec.type === 'local') {
    return {
      async restart({ node, version, client }) {
        const binary = version ? spec.binaries[version] : spec.binary;
        if (!binary) throw new HandoverError(ErrorType.PreconditionFailed, `controller of ${cluster} has no binary for version ${version} (binaries: ${Object.keys(spec.binaries).join(', ') || 'none'})`);
        const configFile = fill(spec.configFile, node.id, version);
        if (client) {
          // Graceful: the server saves (if configured) and exits; the connection closing is the answer.
          await client.call('SHUTDOWN').catch(() => undefined);
        }
        const child = spawn(binary, [configFile], { detached: true, stdio: 'ignore' });
        child.unref();
        return `shut ${node.id} down and started ${binary} ${configFile}`;
      },
      async restartSentinel({ id, client }) {
        if (!spec.sentinelConfigFile) throw new HandoverError(ErrorType.PreconditionFailed, `controller of ${cluster} has no sentinelConfigFile`);
        const configFile = fill(spec.sentinelConfigFile, id);
        if (client) await client.call('SHUTDOWN').catch(() => undefined);
        const child = spawn(spec.sentinelBinary, [configFile], { detached: true, stdio: 'ignore' });
        child.unref();
        return `shut ${id} down and started ${spec.sentinelBinary} ${configFile}`;
      },
    };
  }
  const run = async (template: string, id: string, version?: string) => {
    const cmd = fill(template, id, version);
    try {
      await execAsync(cmd, { timeout: 120_000 });
    } catch (e) {
      const x = e as { code?: number; stderr?: string };
      throw new Error(`restart command for ${id} failed (exit ${x.code}): ${(x.stderr ?? '').trim().slice(0, 300)}`);
    }
    return `ran: ${cmd}`;
  };
  return {
    restart: ({ node, version }) => run(spec.restart, node.id, version),
    async restartSentinel({ id }) {
      if (!spec.restartSentinel) throw new HandoverError(ErrorType.PreconditionFailed, `controller of ${cluster} has no restartSentinel command`);
      return run(spec.restartSentinel, id);
    },
  };
}
