#!/bin/sh
# Run a command inside the lab's network namespace that holds ADDRESS (sandbox/netns.ts):
#   sandbox/netns-exec.sh 10.77.11.12 redis-server /path/redis.conf
# The fleets' inventories use it as the local controller's launcher ("sandbox/netns-exec.sh {host}"), so a
# rolling restart starts the node again on its own "host". Only namespaces named hnd-* are considered.
set -eu
addr=$1
shift
for ns in $(ip netns list | awk '{print $1}'); do
  case "$ns" in hnd-*) ;; *) continue ;; esac
  if ip -n "$ns" -o -4 addr show | grep -q " inet $addr/"; then
    exec ip netns exec "$ns" "$@"
  fi
done
echo "netns-exec: no hnd-* network namespace has the address $addr" >&2
exit 1
