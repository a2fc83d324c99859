// Every workflow the worker registers. Deterministic code only (see eslint.config.mjs).
export { redisSwitchover } from './switchover-redis';
