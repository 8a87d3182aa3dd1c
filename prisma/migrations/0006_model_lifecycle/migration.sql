-- What users edit on a model (description, tags) and archiving: an archived model is hidden from
-- listings by default but keeps its lineage, for the models and jobs that depend on it.
ALTER TABLE "models" ADD COLUMN "description" TEXT NOT NULL DEFAULT '';
ALTER TABLE "models" ADD COLUMN "tags" TEXT[] NOT NULL DEFAULT '{}';
ALTER TABLE "models" ADD COLUMN "archived_at" TIMESTAMP(3);
CREATE INDEX "models_tags_idx" ON "models" USING GIN ("tags");
