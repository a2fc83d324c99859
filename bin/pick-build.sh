# Sourced by bin/handover and bin/handover-worker: whether to run the build in dist/ rather than the sources.
# use_build ROOT ENTRY: true when dist/ENTRY exists, HANDOVER_FROM_SOURCE is not set, and no .ts file of the
# production code is newer than it (a stale build after an edit falls back to the sources, saying so once).
use_build() {
  local root=$1 entry=$root/dist/$2
  [ -z "${HANDOVER_FROM_SOURCE:-}" ] && [ -f "$entry" ] || return 1
  local newer
  newer=$(find "$root"/codec "$root"/core "$root"/inventory "$root"/activities "$root"/workflows "$root"/worker "$root"/client "$root"/sandbox \
    -name '*.ts' -newer "$entry" -print -quit 2>/dev/null)
  if [ -n "$newer" ]; then
    echo "handover: $newer is newer than the build; running the sources (npm run build to refresh dist/)" >&2
    return 1
  fi
  return 0
}
