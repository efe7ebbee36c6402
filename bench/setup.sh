#!/usr/bin/env bash
# Installs the peer libraries used by the benchmark suite. Idempotent.
#   bench/.venv-peers : Python venv with ocpp + websockets (never the project venv)
#   bench/node/node_modules : ocpp-rpc and ws at the versions pinned in package.json
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

OCPP_VERSION="2.1.0"
WEBSOCKETS_VERSION="17.4"
PYTHON="${PYTHON:-python3}"

# --- Python peer: ocpp on websockets -------------------------------------------------
if [ ! -x .venv-peers/bin/python ]; then
    "$PYTHON" -m venv .venv-peers
fi
if ! .venv-peers/bin/python - <<PY 2>/dev/null
import importlib.metadata as m
assert m.version("ocpp") == "$OCPP_VERSION"
assert m.version("websockets") == "$WEBSOCKETS_VERSION"
PY
then
    .venv-peers/bin/python -m pip install --quiet --disable-pip-version-check \
        "ocpp==$OCPP_VERSION" "websockets==$WEBSOCKETS_VERSION" 2>&1 \
        | grep -v "is neither a file nor a directory" || true
    .venv-peers/bin/python -c "import ocpp.v16, websockets"
fi

# --- Node peer: ocpp-rpc (+ ws for the load generator and the null server) -----------
if command -v npm >/dev/null 2>&1; then
    cd node
    if [ ! -d node_modules/ocpp-rpc ] || [ ! -d node_modules/ws ]; then
        if [ -f package-lock.json ]; then
            npm ci --omit-lockfile-registry-resolved --no-audit --no-fund --loglevel=error
        else
            npm install --omit-lockfile-registry-resolved --no-audit --no-fund --loglevel=error
        fi
    fi
    # The lock file must name no registry host: drop any "resolved" field npm wrote.
    node strip-lock.js package-lock.json
    cd ..
else
    echo "setup.sh: npm not found; Node peers and the Node load generator are unavailable" >&2
fi
echo "setup.sh: done"
