# syntax=docker/dockerfile:1
# The ironlb image: one binary for both components (`controller` and `speaker` are the
# first argument, given by the Helm chart). Node 24 runs the TypeScript sources directly,
# so the only compiled part is the packet-socket addon (AF_PACKET for ARP/NDP).

ARG NODE_IMAGE=node:24-bookworm-slim

# --- build: the native addon, with the toolchain node-gyp needs ---------------------------
FROM ${NODE_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY src/arp/native/ src/arp/native/
# node-gyp from the registry rather than the dev dependencies: the image needs nothing
# else from them. Headers come from the base image's own Node, so no download either.
RUN npx --yes node-gyp@12 rebuild --directory src/arp/native --nodedir=/usr/local

# --- runtime dependencies (all pure JavaScript) --------------------------------------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: no dependency needs an install script at run time.
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force

# --- runtime ---------------------------------------------------------------------------------
FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY bin/ ./bin/
COPY src/ ./src/
COPY --from=build /app/src/arp/native/build/Release/ironlb_packet.node ./src/arp/native/build/Release/
# Numeric, so that runAsNonRoot can be checked by the kubelet. The speaker overrides it
# with root in its Pod spec to use NET_RAW (see charts/ironlb/templates/speaker-daemonset.yaml).
USER 65532:65532
ENTRYPOINT ["node", "bin/ironlb.js"]
CMD ["--help"]
