# The platform's image: the API (apl-merge serve) and the worker (npm run worker) run from it.
FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
# Optional GPU support (the webgpu package) is left out of the image: it runs the CPU (WASM) engine.
RUN npm ci --no-audit --no-fund --omit=optional
COPY . .
RUN npm run build && npm prune --omit=dev --omit=optional
ENV APL_MERGE_DATA_ROOTS=/data APL_MERGE_OUTPUT_DIR=/data/outputs
VOLUME /data
EXPOSE 4000
CMD ["node", "bin/apl-merge.js", "serve", "--host", "0.0.0.0", "--port", "4000"]
