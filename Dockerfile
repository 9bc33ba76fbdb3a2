# fleetca: multi-stage build, non-root runtime, data dir on a volume.
# Build:  docker build -t fleetca .
# Run:    docker run -p 8080:8080 -p 8443:8443 -v fleetca-data:/data fleetca
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm ci --no-audit --no-fund && npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production FLEETCA_DATA_DIR=/data FLEETCA_CONFIG_DIR=/app/ca-config
WORKDIR /app
# PostgreSQL refuses to run as root: the embedded cluster runs as this same unprivileged user.
RUN groupadd --system fleetca && useradd --system --gid fleetca --home-dir /data fleetca \
 && mkdir -p /data && chown fleetca:fleetca /data
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
COPY ca-config ./ca-config
COPY migrations ./migrations
USER fleetca
VOLUME ["/data"]
EXPOSE 8080 8443
# Bind all interfaces inside the container; the CDP/AIA base URL must be the address clients use.
CMD ["node", "bin/fleetca.js", "start", "--host", "0.0.0.0", "--public-url", "http://localhost:8080"]
