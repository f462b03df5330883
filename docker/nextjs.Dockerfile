# The Next.js app (nextjs/) for docker-compose. Build context: nextjs/.
FROM node:22.20.0-bookworm-slim
ENV NEXT_TELEMETRY_DISABLED=1 NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --include=dev --no-audit --no-fund --loglevel=error
COPY . .
RUN node node_modules/next/dist/bin/next build
EXPOSE 3000
# 0.0.0.0 inside the container; compose publishes it on the host's 127.0.0.1 only.
CMD ["node", "node_modules/next/dist/bin/next", "start", "-H", "0.0.0.0", "-p", "3000"]
