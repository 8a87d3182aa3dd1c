-- Authentication and accountability: API tokens (only their hash is stored, with a short prefix
-- for listing), the data roots an admin added beside the ones the server was started with, and
-- which token created every model, task, merge and analysis.
CREATE TYPE "Role" AS ENUM ('VIEWER', 'OPERATOR', 'ADMIN');

CREATE TABLE "api_tokens" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "role" "Role" NOT NULL,
    "prefix" TEXT NOT NULL,
    "hash" TEXT NOT NULL,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "last_used_at" TIMESTAMP(3),
    "expires_at" TIMESTAMP(3),
    "revoked_at" TIMESTAMP(3),
    "created_by" TEXT,
    CONSTRAINT "api_tokens_pkey" PRIMARY KEY ("id")
);
CREATE UNIQUE INDEX "api_tokens_name_key" ON "api_tokens"("name");
CREATE UNIQUE INDEX "api_tokens_hash_key" ON "api_tokens"("hash");

CREATE TABLE "data_roots" (
    "name" TEXT NOT NULL,
    "path" TEXT NOT NULL,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "created_by" TEXT,
    CONSTRAINT "data_roots_pkey" PRIMARY KEY ("name")
);
CREATE UNIQUE INDEX "data_roots_path_key" ON "data_roots"("path");

ALTER TABLE "models" ADD COLUMN "created_by" TEXT;
ALTER TABLE "tasks" ADD COLUMN "created_by" TEXT;
ALTER TABLE "merges" ADD COLUMN "created_by" TEXT;
ALTER TABLE "importance_analyses" ADD COLUMN "created_by" TEXT;
CREATE INDEX "merges_created_by_status_idx" ON "merges"("created_by", "status");
CREATE INDEX "importance_analyses_created_by_status_idx" ON "importance_analyses"("created_by", "status");
