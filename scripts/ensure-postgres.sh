#!/usr/bin/env bash
# Make sure the PostgreSQL the tests use is up. Starts the local cluster when it is down; with CI=true
# a server that still cannot be reached fails the run, elsewhere its tests skip with the reason.
set -u
host=${ORDERMESH_TEST_PG_HOST:-127.0.0.1}
port=${ORDERMESH_TEST_PG_PORT:-5432}
ready() { pg_isready -q -h "$host" -p "$port" 2>/dev/null || python3 - "$host" "$port" <<'PY'
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).close()
except OSError:
    sys.exit(1)
PY
}
ready && exit 0
if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
  echo "PostgreSQL is down at $host:$port; starting the local cluster"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  for _ in $(seq 1 30); do ready && exit 0; sleep 1; done
fi
if [ "${CI:-}" = "true" ] || [ "${CI:-}" = "1" ]; then
  echo "ERROR: PostgreSQL is required in CI and cannot be reached at $host:$port" >&2
  exit 1
fi
echo "warning: PostgreSQL unreachable at $host:$port; PostgreSQL tests will be skipped" >&2
