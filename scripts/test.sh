#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs the real peers the end-to-end tests
# talk to (a Python venv in .venv/ with moto[server], the OpenTelemetry Python SDK and
# exporters, aws-xray-sdk, cfn-lint; Debian's chromium for the HTML report test), builds
# the workspace once, then runs every test.
#
# Usage: scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
requirements=tests/python/requirements.txt
stamp=.venv/.requirements.sha256
want=$(sha256sum "$requirements" | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "==> setting up .venv (Python test peers)"
    "$python" -m venv .venv
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$requirements"
    echo "$want" > "$stamp"
fi

# Headless Chromium opens `aurastream report --html` pages (ops/tests/report.rs).
if ! command -v chromium >/dev/null 2>&1; then
    echo "==> installing chromium (Debian package, for the HTML report test)"
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo=sudo; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium
fi

echo "==> building the workspace (binaries are shared by every end-to-end test)"
cargo build --workspace --bins

# The lean Lambda layer's build (README "Which layer: full or lean") must keep compiling;
# its tests are the default build's (the features only leave code out).
echo "==> checking the lean Lambda layer's feature set"
cargo check -p aurastream-collector --no-default-features --features ring --bins

echo "==> running the tests"
cargo test --workspace "$@"
