-- Worker liveness: every worker process keeps a row, beating while it runs, so the API can say
-- which workers are alive and what they run.
CREATE TABLE "workers" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "host" TEXT NOT NULL,
    "pid" INTEGER NOT NULL,
    "backend" TEXT NOT NULL,
    "concurrency" INTEGER NOT NULL,
    "heartbeat_seconds" INTEGER NOT NULL,
    "current_jobs" UUID[] NOT NULL DEFAULT '{}',
    "started_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "last_seen_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "stopped_at" TIMESTAMP(3),
    CONSTRAINT "workers_pkey" PRIMARY KEY ("id")
);
CREATE INDEX "workers_last_seen_at_idx" ON "workers"("last_seen_at");
