# syntax=docker/dockerfile:1
# sitefleet worker, API and codec endpoint: one image, the service's command picks the role (docker-compose.yml).
# Debian, not Alpine: the Temporal core bridge ships glibc binaries only.

ARG NODE_IMAGE=node:20.19.5-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
# Compilers for native modules (better-sqlite3) when no prebuilt binary matches.
RUN apt-get update \
  && apt-get install -y --no-install-recommends python3 make g++ ca-certificates \
  && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
# The compiled code (dist/js) and, built from it, the workflow bundles (plain and encrypted-failure) with their
# manifests: production runs JavaScript, not the tsx loader (~45 MB less resident memory per process).
RUN npm run build

FROM ${NODE_IMAGE}
# ssh and rsync reach the web servers (zstd compresses the relay's stream); tini reaps their processes and
# forwards signals to node.
RUN apt-get update \
  && apt-get install -y --no-install-recommends openssh-client rsync zstd ca-certificates tini \
  && rm -rf /var/lib/apt/lists/*
# MALLOC_ARENA_MAX: glibc's per-thread malloc arenas inflate the resident memory of the worker's native threads.
ENV NODE_ENV=production \
  MALLOC_ARENA_MAX=2 \
  SITEFLEET_DATA_DIR=/var/lib/sitefleet
WORKDIR /app
# Code stays owned by root: the service user can run it, not change it.
COPY --from=build /app /app
RUN mkdir -p /var/lib/sitefleet /home/node/.ssh \
  && chown node:node /var/lib/sitefleet /home/node/.ssh \
  && chmod 700 /home/node/.ssh
USER node
VOLUME ["/var/lib/sitefleet"]
# 8080 API, 8888 codec endpoint, 9464 the worker's metrics (the Temporal SDK's and sitefleet's)
EXPOSE 8080 8888 9464
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "--max-old-space-size=160", "dist/js/workers/main.js"]
