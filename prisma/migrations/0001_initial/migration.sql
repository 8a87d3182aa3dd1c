-- Initial schema: every model of prisma/schema.prisma.
CREATE TYPE "ModelKind" AS ENUM ('BASE', 'FINETUNE', 'MERGE');
CREATE TYPE "JobStatus" AS ENUM ('QUEUED', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED');

CREATE TABLE "checkpoints" (
    "id" UUID NOT NULL,
    "uri" TEXT NOT NULL,
    "sha256" TEXT NOT NULL,
    "bytes" BIGINT NOT NULL,
    "dtype" TEXT NOT NULL,
    "parameter_count" BIGINT NOT NULL,
    "tensor_count" INTEGER NOT NULL,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "checkpoints_pkey" PRIMARY KEY ("id")
);

CREATE TABLE "models" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "kind" "ModelKind" NOT NULL,
    "architecture" TEXT NOT NULL,
    "checkpoint_id" UUID NOT NULL,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "models_pkey" PRIMARY KEY ("id")
);
CREATE UNIQUE INDEX "models_name_key" ON "models"("name");
CREATE INDEX "models_kind_created_at_idx" ON "models"("kind", "created_at");

CREATE TABLE "lineage_edges" (
    "parent_id" UUID NOT NULL,
    "child_id" UUID NOT NULL,
    "relation" TEXT NOT NULL,
    "weight" DOUBLE PRECISION,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "lineage_edges_pkey" PRIMARY KEY ("parent_id", "child_id")
);
CREATE INDEX "lineage_edges_child_id_idx" ON "lineage_edges"("child_id");

CREATE TABLE "tasks" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "classes" INTEGER NOT NULL,
    "description" TEXT NOT NULL DEFAULT '',
    "data_uri" TEXT NOT NULL,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "tasks_pkey" PRIMARY KEY ("id")
);
CREATE UNIQUE INDEX "tasks_name_key" ON "tasks"("name");

CREATE TABLE "importance_analyses" (
    "id" UUID NOT NULL,
    "model_id" UUID NOT NULL,
    "task_id" UUID NOT NULL,
    "level" TEXT NOT NULL,
    "estimator" TEXT NOT NULL,
    "status" "JobStatus" NOT NULL DEFAULT 'QUEUED',
    "done" INTEGER NOT NULL DEFAULT 0,
    "total" INTEGER NOT NULL DEFAULT 0,
    "artifact_uri" TEXT,
    "summary" JSONB,
    "error" TEXT,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMP(3) NOT NULL,
    CONSTRAINT "importance_analyses_pkey" PRIMARY KEY ("id")
);
CREATE INDEX "importance_analyses_model_id_idx" ON "importance_analyses"("model_id");

CREATE TABLE "merges" (
    "id" UUID NOT NULL,
    "method" TEXT NOT NULL,
    "parameters" JSONB NOT NULL,
    "seed" BIGINT NOT NULL DEFAULT 0,
    "status" "JobStatus" NOT NULL DEFAULT 'QUEUED',
    "done" INTEGER NOT NULL DEFAULT 0,
    "total" INTEGER NOT NULL DEFAULT 0,
    "error" TEXT,
    "output_model_id" UUID,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMP(3) NOT NULL,
    CONSTRAINT "merges_pkey" PRIMARY KEY ("id")
);
CREATE UNIQUE INDEX "merges_output_model_id_key" ON "merges"("output_model_id");

CREATE TABLE "merge_inputs" (
    "merge_id" UUID NOT NULL,
    "model_id" UUID NOT NULL,
    "position" INTEGER NOT NULL,
    "is_base" BOOLEAN NOT NULL DEFAULT false,
    "parameters" JSONB NOT NULL,
    CONSTRAINT "merge_inputs_pkey" PRIMARY KEY ("merge_id", "position")
);

CREATE TABLE "evaluations" (
    "id" UUID NOT NULL,
    "model_id" UUID NOT NULL,
    "task_id" UUID NOT NULL,
    "split" TEXT NOT NULL,
    "metric" TEXT NOT NULL,
    "value" DOUBLE PRECISION NOT NULL,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "evaluations_pkey" PRIMARY KEY ("id")
);
CREATE UNIQUE INDEX "evaluations_model_id_task_id_split_metric_key" ON "evaluations"("model_id", "task_id", "split", "metric");

CREATE TABLE "job_events" (
    "id" BIGSERIAL NOT NULL,
    "job_kind" TEXT NOT NULL,
    "job_id" UUID NOT NULL,
    "phase" TEXT NOT NULL,
    "done" INTEGER NOT NULL,
    "total" INTEGER NOT NULL,
    "eta_seconds" DOUBLE PRECISION,
    "message" TEXT NOT NULL,
    "status" "JobStatus" NOT NULL,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "job_events_pkey" PRIMARY KEY ("id")
);
CREATE INDEX "job_events_job_id_id_idx" ON "job_events"("job_id", "id");

ALTER TABLE "models" ADD CONSTRAINT "models_checkpoint_id_fkey" FOREIGN KEY ("checkpoint_id") REFERENCES "checkpoints"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
ALTER TABLE "lineage_edges" ADD CONSTRAINT "lineage_edges_parent_id_fkey" FOREIGN KEY ("parent_id") REFERENCES "models"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "lineage_edges" ADD CONSTRAINT "lineage_edges_child_id_fkey" FOREIGN KEY ("child_id") REFERENCES "models"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "importance_analyses" ADD CONSTRAINT "importance_analyses_model_id_fkey" FOREIGN KEY ("model_id") REFERENCES "models"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
ALTER TABLE "importance_analyses" ADD CONSTRAINT "importance_analyses_task_id_fkey" FOREIGN KEY ("task_id") REFERENCES "tasks"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
ALTER TABLE "merges" ADD CONSTRAINT "merges_output_model_id_fkey" FOREIGN KEY ("output_model_id") REFERENCES "models"("id") ON DELETE SET NULL ON UPDATE CASCADE;
ALTER TABLE "merge_inputs" ADD CONSTRAINT "merge_inputs_merge_id_fkey" FOREIGN KEY ("merge_id") REFERENCES "merges"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "merge_inputs" ADD CONSTRAINT "merge_inputs_model_id_fkey" FOREIGN KEY ("model_id") REFERENCES "models"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
ALTER TABLE "evaluations" ADD CONSTRAINT "evaluations_model_id_fkey" FOREIGN KEY ("model_id") REFERENCES "models"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "evaluations" ADD CONSTRAINT "evaluations_task_id_fkey" FOREIGN KEY ("task_id") REFERENCES "tasks"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
