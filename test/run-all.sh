#!/usr/bin/env bash
# The whole test suite (README: `npm test`): installs what it needs, then runs lint,
# typecheck, and the unit, integration (real kube-apiserver + etcd) and end-to-end
# (network namespaces, root) tiers. A tier that cannot run fails the suite; none is skipped.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
say() { echo "[test] $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

[ "$(uname -s)" = Linux ] || die "ironlb's tests need Linux (network namespaces, packet sockets)."
[ "$(id -u)" = 0 ] || die "the end-to-end tier creates network namespaces and needs root: run as root (sudo npm test)."

bash test/install-deps.sh
bash test/cluster/deps.sh

export PATH="$PWD/node_modules/.bin:$PATH"
node -e 'if (+process.versions.node.split(".")[0] < 24) { console.error("Node >= 24 expected from node_modules/.bin"); process.exit(1) }'

say "building the native packet-socket addon"
npm run --silent build >/dev/null
say "building or reusing the control-plane binaries"
bash test/controlplane/build.sh >/dev/null
say "building or reusing ironlb's image (the real-cluster e2e test installs it)"
[ -n "${IRONLB_IMAGE_ARCHIVE:-}" ] || npm run --silent image >/dev/null

say "lint and typecheck"
biome check .
tsc --noEmit

mkdir -p test-results
set +e
vitest run --reporter=default --reporter=json --outputFile.json=test-results/vitest.json "$@"
rc=$?
set -e
# One plain closing line for CI, counted from vitest's own report.
node -e '
  const r = JSON.parse(require("fs").readFileSync("test-results/vitest.json", "utf8"));
  // A file that fails to load has no failed test: count it, so the line never reads 0 failed.
  const failed = r.numFailedTests || (r.success ? 0 : Math.max(1, r.numFailedTestSuites));
  console.log(`${r.numPassedTests} passed, ${failed} failed` + (r.numPendingTests ? `, ${r.numPendingTests} skipped` : ""));
' || true
exit $rc
