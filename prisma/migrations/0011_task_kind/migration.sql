-- What a task's labels are: one class per example (a classifier's head scores it) or a token per
-- position (a language model scores it, NLL and exact match of the completion). Recorded at
-- registration from the data, so choosing the tasks a model can be scored on is one query instead
-- of reading every registered task's data. Tasks registered before this migration are classifier
-- tasks, except JSONL ones, which are always language-model tasks.
CREATE TYPE "TaskKind" AS ENUM ('CLASSIFICATION', 'LANGUAGE_MODEL');
ALTER TABLE "tasks" ADD COLUMN "kind" "TaskKind" NOT NULL DEFAULT 'CLASSIFICATION';
UPDATE "tasks" SET "kind" = 'LANGUAGE_MODEL' WHERE "data_uri" LIKE '%.jsonl';
