# syntax=docker/dockerfile:1
# The ironlb image: one program for both components (`controller` and `speaker` are the
# first argument, given by the Helm chart), shipped as compiled JavaScript with its
# packet-socket addon (AF_PACKET for ARP/NDP). `npm run image` builds it with buildah; where
# no registry can be reached it makes NODE_IMAGE locally (Debian + Node 24), see
# scripts/image.sh. Any image with Node 24 and npm in /usr/local (as the official one) works.

ARG NODE_IMAGE=node:24-bookworm-slim

# --- build: the addon (node-gyp needs a toolchain), the JavaScript, the runtime dependencies
# nftables only to copy `nft` (the speaker's ipMode Proxy forwarding runs it) into the runtime.
FROM ${NODE_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ nftables \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# The tools come from the registry at the lockfile's versions rather than from the dev
# dependencies: the image needs nothing else from those. Headers come from the base image's
# own Node (/usr/local/include/node), so node-gyp downloads none.
COPY package.json package-lock.json ./
# (In /tools itself, not with --prefix: that would also move npm's global config.)
RUN node -e 'const l = require("./package-lock.json").packages; for (const p of ["node-gyp", "typescript"]) console.log(`${p}@${l["node_modules/" + p].version}`)' > /tmp/tools \
 && mkdir /tools && cd /tools \
 && xargs npm install --no-save --no-audit --no-fund --ignore-scripts < /tmp/tools \
 && npm cache clean --force
# Runtime dependencies only (@kubernetes/client-node is a dev dependency: the components
# import its types, which compile away). No dependency needs an install script.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
# Builds the addon and its tools build (tests and benchmarks only); only the former is copied.
COPY src/layer2/native/ src/layer2/native/
RUN /tools/node_modules/.bin/node-gyp rebuild --directory src/layer2/native --nodedir=/usr/local
COPY tsconfig.json tsconfig.build.json ./
COPY src/ src/
# Emit only (--noCheck, no type packages): types are checked by `npm run typecheck`, which
# needs the dev dependencies this stage does not have.
RUN echo '{ "extends": "./tsconfig.build.json", "compilerOptions": { "types": [] } }' > tsconfig.image.json \
 && /tools/node_modules/.bin/tsc -p tsconfig.image.json --noCheck \
 && mkdir -p dist/layer2/native/build/Release \
 && cp src/layer2/native/build/Release/ironlb_packet.node dist/layer2/native/build/Release/

# --- rootfs: Node, nft and the shared libraries they link, the application, nothing else ----
# No shell, package manager, npm or headers: the runtime is what `node` and `nft` need (ldd)
# plus the app. Copying into a folder and then into an empty image keeps the base image's
# other layers (npm, yarn, apt, perl...) out of the result; the 126 MB node binary is
# most of what remains.
FROM build AS rootfs
RUN set -eu; r=/rootfs; \
    mkdir -p $r/usr/local/bin $r/usr/sbin $r/tmp $r/etc $r/app; chmod 1777 $r/tmp; \
    cp /usr/local/bin/node $r/usr/local/bin/node; \
    cp /usr/sbin/nft $r/usr/sbin/nft; \
    for f in $(ldd /usr/local/bin/node /usr/sbin/nft /app/dist/layer2/native/build/Release/ironlb_packet.node \
               | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\/.*[^:]$/ { print $1 }' | sort -u); do \
      cp -L --parents "$f" $r/; \
    done; \
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > $r/etc/passwd; \
    printf 'root:x:0:\nnonroot:x:65532:\n' > $r/etc/group; \
    cp -a /app/node_modules /app/dist /app/package.json $r/app/; \
    mkdir -p $r/app/bin

# --- runtime --------------------------------------------------------------------------------
FROM scratch
COPY --from=rootfs /rootfs/ /
COPY bin/ironlb.js /app/bin/ironlb.js
ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin NODE_ENV=production
WORKDIR /app
# Numeric, so that runAsNonRoot can be checked by the kubelet. The speaker overrides it
# with root in its Pod spec to use NET_RAW (see charts/ironlb/templates/speaker-daemonset.yaml).
USER 65532:65532
# 2 MiB young-generation semi-spaces (Node's default grows them to 16 MiB) and --lite-mode
# (V8's interpreter only: no optimising compilers, lazy feedback): both components wait on
# the API server and the network, not on their own CPU, and RSS at 1,000 Services fell to
# ~70 MiB each (bench/RESULTS.md; the benches read this line and run exactly it).
ENTRYPOINT ["node", "--max-semi-space-size=2", "--lite-mode", "bin/ironlb.js"]
CMD ["--help"]
