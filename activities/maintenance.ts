/**
 * readMaintenance: the cluster's open maintenance windows, asked of its maintenance workflow through the
 * worker's own Temporal client (the activity context's). No maintenance workflow: none. Read-only.
 */
import { Context } from '@temporalio/activity';
import { WorkflowNotFoundError } from '@temporalio/client';
import { activeWindows, type MaintenanceWindow } from '../core/maintenance';
import { maintenanceWorkflowId } from '../core/ids';
import { activity } from './activity';

export interface ReadMaintenanceResult {
  windows: MaintenanceWindow[];
}

export function createMaintenanceActivities() {
  return {
    readMaintenance: activity(async (input: { cluster: string }): Promise<ReadMaintenanceResult> => {
      const handle = Context.current().client.workflow.getHandle(maintenanceWorkflowId(input.cluster));
      try {
        const d = await handle.describe();
        if (d.status.name !== 'RUNNING') return { windows: [] };
        return { windows: activeWindows(await handle.query<MaintenanceWindow[]>('maintenance'), Date.now()) };
      } catch (e) {
        if (e instanceof WorkflowNotFoundError) return { windows: [] };
        throw e;
      }
    }),
  };
}
