#!/usr/bin/env bash
# The whole test suite (README: `npm test`): installs what it needs, then runs lint,
# typecheck, and the unit, tools (shellcheck, vagrant), integration (real kube-apiserver +
# etcd) and end-to-end (network namespaces, root) tiers. A tier that cannot run fails the suite; none is skipped.
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

mkdir -p test-results
rm -f test-results/vitest*.json test-results/lane-*.log
faults=test/e2e/speaker-faults.test.ts
set +e
if [ $# -gt 0 ]; then
  # Chosen files or options: lint, typecheck, then one vitest run, as asked.
  biome check . && tsc --noEmit && vitest run --exclude "$faults" --reporter=default \
    --reporter=json --outputFile.json=test-results/vitest.json "$@"
  rc=$?
else
  # Two lanes at once, then the speaker fault tests alone. On 2 cores vitest runs one file at a
  # time (maxWorkers = cores - 1), so one run would do the e2e files and then the others, one
  # after another. The e2e files go in lane A, which also runs one file at a time (they share
  # fixed namespaces and addresses). Lane B is lint, typecheck, unit, tools and integration:
  # loopback only, their own control plane on free ports, nothing shared with lane A. Same CPU
  # priority: lane A's speakers and routers sleep most of the time, so the scheduler runs them
  # at once when they wake; a niced lane B was starved into timeouts whenever anything else
  # ran (checked at load 17). Lane B's output is printed when both lanes are done.
  laneb=test-results/lane-b.log
  bash -c 'biome check . && tsc --noEmit && vitest run --project unit \
    --project tools --project integration --reporter=default --reporter=json \
    --outputFile.json=test-results/vitest-b.json' >"$laneb" 2>&1 &
  pid_b=$!
  say "lane A: the end-to-end files; lane B (lint, typecheck, unit, tools, integration) writes $laneb"
  vitest run --project e2e --exclude "$faults" --reporter=default --reporter=json \
    --outputFile.json=test-results/vitest-a.json
  rc=$?
  wait "$pid_b"
  rc_b=$?
  say "lane B (lint, typecheck, unit, tools, integration):"
  cat "$laneb"
  [ $rc -ne 0 ] || rc=$rc_b
  # Two processes hold the data of what used to be one run.
  node -e '
    const fs = require("fs");
    const files = ["test-results/vitest-a.json", "test-results/vitest-b.json"];
    const parts = files.filter((f) => fs.existsSync(f)).map((f) => JSON.parse(fs.readFileSync(f, "utf8")));
    if (parts.length === 0) process.exit(0);
    const out = { ...parts[0], testResults: [], success: true };
    for (const k of Object.keys(out)) if (k.startsWith("num")) out[k] = 0;
    // A lane that stopped before vitest (lint, typecheck) counts as a failed suite.
    if (parts.length < files.length) Object.assign(out, { success: false, numFailedTestSuites: 1 });
    for (const p of parts) {
      for (const k of Object.keys(out)) if (k.startsWith("num")) out[k] += p[k] ?? 0;
      out.testResults.push(...p.testResults);
      out.startTime = Math.min(out.startTime, p.startTime);
      out.success &&= p.success;
    }
    fs.writeFileSync("test-results/vitest.json", JSON.stringify(out));
  ' || true
  # The speaker fault tests (issue 9), against a control plane of their own: they starve
  # speakers of CPU with a hog on purpose and judge failure detection in real time, so
  # beside other files each would disturb the other. `npm run test:faults` runs them alone.
  vitest run "$faults" --reporter=default --reporter=json \
    --outputFile.json=test-results/vitest-faults.json
  rc2=$?
  [ $rc -ne 0 ] || rc=$rc2
fi
set -e
# One plain closing line for CI, counted from vitest's own reports.
node -e '
  const fs = require("fs");
  let passed = 0, failed = 0, skipped = 0;
  for (const f of ["test-results/vitest.json", "test-results/vitest-faults.json"]) {
    if (!fs.existsSync(f)) continue;
    const r = JSON.parse(fs.readFileSync(f, "utf8"));
    passed += r.numPassedTests;
    // A file that fails to load has no failed test: count it, so the line never reads 0 failed.
    failed += r.numFailedTests || (r.success ? 0 : Math.max(1, r.numFailedTestSuites));
    skipped += r.numPendingTests;
  }
  console.log(`${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ""));
' || true
exit $rc
