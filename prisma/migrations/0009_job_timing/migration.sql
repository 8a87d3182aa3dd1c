-- When a job's latest attempt started and when the job ended, and which worker ran it last: the
-- timing a dashboard shows (the lease columns are cleared when an attempt ends).
ALTER TABLE "merges" ADD COLUMN "started_at" TIMESTAMP(3), ADD COLUMN "finished_at" TIMESTAMP(3), ADD COLUMN "last_worker" TEXT;
ALTER TABLE "importance_analyses" ADD COLUMN "started_at" TIMESTAMP(3), ADD COLUMN "finished_at" TIMESTAMP(3), ADD COLUMN "last_worker" TEXT;
ALTER TABLE "evaluation_runs" ADD COLUMN "started_at" TIMESTAMP(3), ADD COLUMN "finished_at" TIMESTAMP(3), ADD COLUMN "last_worker" TEXT;
