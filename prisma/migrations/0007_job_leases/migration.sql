-- One attempt owns a running job: its lease, taken when it starts, is checked by every later write
-- (progress, completion, failure, hand-back). An attempt whose lease was taken over by another
-- stops and leaves the files of the new one alone.
ALTER TABLE "merges" ADD COLUMN "lease" UUID;
ALTER TABLE "merges" ADD COLUMN "lease_worker" TEXT;
ALTER TABLE "importance_analyses" ADD COLUMN "lease" UUID;
ALTER TABLE "importance_analyses" ADD COLUMN "lease_worker" TEXT;
