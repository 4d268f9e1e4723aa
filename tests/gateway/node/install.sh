#!/usr/bin/env bash
# Install the DCC's open-source clients the gateway tests drive the bench with (package.json
# here, versions pinned by package-lock.json) into DIR, once: a later run with the same lock file
# reuses them. DIR defaults to $BENCH_NPM_DIR, else ${XDG_CACHE_HOME:-~/.cache}/gb-meter-bench/npm.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=${1:-${BENCH_NPM_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/gb-meter-bench/npm}}
mkdir -p "$dir"
exec 9>"$dir/.install.lock"
flock 9  # pytest workers and .ci/run may ask at the same time
if cmp -s "$here/package-lock.json" "$dir/package-lock.json" \
        && [ -f "$dir/node_modules/@smartdcc/duis-sign-wrap/dist/tool.jar" ]; then
    exit 0
fi
cp "$here/package.json" "$here/package-lock.json" "$dir/"
cd "$dir"
npm ci --no-audit --no-fund --loglevel=error
