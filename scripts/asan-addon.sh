#!/usr/bin/env bash
# Runs the native addon's end-to-end tests once with the addon built under AddressSanitizer
# (issue 17): a copy of the working tree in a temporary folder, the addon compiled with
# -fsanitize=address, every process of the run started with the ASan runtime preloaded
# (node needs it first in its library list; the routers and tools the tests start inherit
# it and run unchanged). A memory error aborts the process that made it: its test fails,
# and ASan's report is in the output. Run as root, like the e2e tests:
#   flock /tmp/ironlb-e2e.lock bash scripts/asan-addon.sh [test files of any tier...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
files=("$@")
if [ ${#files[@]} -eq 0 ]; then
  # The tests that drive every addon function: packet sockets and link state (arp-socket),
  # the TTL-reporting UDP socket (bfd), the TCP-MD5 and GTSM sockets (bgp-md5, bgp-gtsm),
  # the heartbeat socket's filter (heartbeat-trust: real membership sockets in process; the
  # heartbeat-flood e2e's three speakers do not start within its setup timeout under ASan).
  files=(test/e2e/arp-socket.test.ts test/e2e/bfd.test.ts test/e2e/bgp-md5.test.ts
    test/e2e/bgp-gtsm.test.ts test/integration/heartbeat-trust.test.ts)
fi
asan=$(gcc -print-file-name=libasan.so)
if [ ! -e "$asan" ]; then
  echo "asan-addon: gcc has no libasan.so (Debian: apt-get install gcc)" >&2
  exit 1
fi
tmp=$(mktemp -d /tmp/ironlb-asan.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
tar -C "$root" --exclude=./node_modules --exclude=./.git --exclude=./src/layer2/native/build \
  --exclude=./.cache --exclude=./dist -cf - . | tar -C "$tmp" -xf -
ln -s "$root/node_modules" "$tmp/node_modules"
cd "$tmp"
export PATH="$root/node_modules/.bin:$PATH"
CFLAGS="-fsanitize=address -fno-omit-frame-pointer -g -O1" LDFLAGS="-fsanitize=address" \
  npm run --silent build >/dev/null
if ! nm -D src/layer2/native/build/Release/ironlb_packet.node | grep -q __asan_; then
  echo "asan-addon: the addon was built without AddressSanitizer" >&2
  exit 1
fi
# The preload reaches every program the tests start. iproute2 6.1's `ip route show` calls
# strncpy with overlapping arguments in print_route (harmless, but ASan aborts it): that one
# function is suppressed, nothing of the addon's.
printf 'interceptor_via_fun:print_route\n' >"$tmp/asan.supp"
# Leaks are not checked: node itself keeps memory until exit by design.
LD_PRELOAD="$asan" \
  ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:print_summary=1:suppressions=$tmp/asan.supp" \
  npx vitest run "${files[@]}"
