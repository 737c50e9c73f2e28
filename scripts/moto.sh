# Sourced by scripts/test.sh and scripts/demo.sh: a project-local moto server
# on a free loopback port, stopped on exit (also on failure).
# Sets AWS_ENDPOINT_URL and fixed test credentials.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
MOTO_VERSION="${MOTO_VERSION:-5.2.5}"

ensure_moto() {
  if [ ! -x "$VENV/bin/moto_server" ]; then
    echo "==> installing moto[server] $MOTO_VERSION into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

start_moto() {
  ensure_moto
  MOTO_PORT="$(free_port)"
  MOTO_LOG="${MOTO_LOG:-$ROOT/target/moto.log}"
  mkdir -p "$(dirname "$MOTO_LOG")"
  # moto's server with DynamoDB writes applied atomically, as the real service does
  # in the account of the fixtures and of the runtime API's function ARN, so
  # the ARNs it issues name the account the functions run in
  MOTO_ACCOUNT_ID="${MOTO_ACCOUNT_ID:-111122223333}" \
    "$VENV/bin/python" "$ROOT/scripts/moto_server_atomic.py" 127.0.0.1 "$MOTO_PORT" >"$MOTO_LOG" 2>&1 &
  MOTO_PID=$!
  trap stop_moto EXIT
  export AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT"
  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
  for _ in $(seq 1 100); do
    if python3 -c "import urllib.request,sys; urllib.request.urlopen('$AWS_ENDPOINT_URL/moto-api/', timeout=1)" 2>/dev/null; then
      echo "==> moto server on $AWS_ENDPOINT_URL (pid $MOTO_PID)"
      eval "$("$VENV/bin/python" "$ROOT/scripts/seed_network.py")"
      return 0
    fi
    sleep 0.1
  done
  echo "moto server did not start; log:" >&2
  cat "$MOTO_LOG" >&2
  return 1
}

stop_moto() {
  if [ -n "${MOTO_PID:-}" ] && kill -0 "$MOTO_PID" 2>/dev/null; then
    kill "$MOTO_PID" 2>/dev/null || true
    wait "$MOTO_PID" 2>/dev/null || true
  fi
}
