/** Free loopback ports: the production helpers (activities/backup/scratch.ts), shared with the sandbox. */
export { freePort, portIsFree, sleep, startOnFreePort, startOnFreePorts } from '../activities/backup/scratch';
