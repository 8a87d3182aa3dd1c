-- Evaluations as jobs of their own: a fine-tune is scored on its tasks when it is registered (or
-- any model on request), so a merge's scores have the fine-tunes' beside them.
CREATE TABLE "evaluation_runs" (
    "id" UUID NOT NULL,
    "model_id" UUID NOT NULL,
    "task_id" UUID,
    "status" "JobStatus" NOT NULL DEFAULT 'QUEUED',
    "done" INTEGER NOT NULL DEFAULT 0,
    "total" INTEGER NOT NULL DEFAULT 0,
    "error" TEXT,
    "result" JSONB,
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "lease" UUID,
    "lease_worker" TEXT,
    "created_by" TEXT,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMP(3) NOT NULL,
    CONSTRAINT "evaluation_runs_pkey" PRIMARY KEY ("id")
);
CREATE INDEX "evaluation_runs_model_id_idx" ON "evaluation_runs"("model_id");
CREATE INDEX "evaluation_runs_status_idx" ON "evaluation_runs"("status");
CREATE INDEX "evaluation_runs_created_by_status_idx" ON "evaluation_runs"("created_by", "status");
ALTER TABLE "evaluation_runs" ADD CONSTRAINT "evaluation_runs_model_id_fkey" FOREIGN KEY ("model_id") REFERENCES "models"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "evaluation_runs" ADD CONSTRAINT "evaluation_runs_task_id_fkey" FOREIGN KEY ("task_id") REFERENCES "tasks"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
