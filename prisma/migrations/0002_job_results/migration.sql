-- What a job produced and which attempt it is on: merges record the output model's name asked for
-- and their result report (backend, seconds, preparation); analyses record the base they were
-- measured against and their result report.
ALTER TABLE "merges" ADD COLUMN "output_name" TEXT;
ALTER TABLE "merges" ADD COLUMN "result" JSONB;
ALTER TABLE "merges" ADD COLUMN "attempts" INTEGER NOT NULL DEFAULT 0;

ALTER TABLE "importance_analyses" ADD COLUMN "base_model_id" UUID;
ALTER TABLE "importance_analyses" ADD COLUMN "result" JSONB;
ALTER TABLE "importance_analyses" ADD COLUMN "attempts" INTEGER NOT NULL DEFAULT 0;
ALTER TABLE "importance_analyses" ADD CONSTRAINT "importance_analyses_base_model_id_fkey" FOREIGN KEY ("base_model_id") REFERENCES "models"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

CREATE INDEX "merge_inputs_model_id_idx" ON "merge_inputs"("model_id");
CREATE INDEX "merges_status_idx" ON "merges"("status");
CREATE INDEX "importance_analyses_status_idx" ON "importance_analyses"("status");
