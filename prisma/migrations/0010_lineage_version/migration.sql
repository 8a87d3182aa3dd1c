-- A counter that every change to what lineage answers show moves on, in the changing transaction:
-- edges added or removed (a model registered or deleted), a model renamed. API processes keep
-- lineage answers in memory under the version they were read at and compare it with this one row,
-- so an answer is never served after the change that made it stale has committed — whoever wrote
-- it (the API, a worker, the CLI, or SQL by hand).
CREATE TABLE "lineage_version" (
    "id" INTEGER NOT NULL DEFAULT 1,
    "version" BIGINT NOT NULL DEFAULT 0,

    CONSTRAINT "lineage_version_pkey" PRIMARY KEY ("id")
);
INSERT INTO "lineage_version" ("id", "version") VALUES (1, 0);

CREATE FUNCTION "bump_lineage_version"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE "lineage_version" SET "version" = "version" + 1 WHERE "id" = 1;
  RETURN NULL;
END
$$;

CREATE TRIGGER "lineage_edges_changed" AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON "lineage_edges"
    FOR EACH STATEMENT EXECUTE FUNCTION "bump_lineage_version"();
CREATE TRIGGER "models_lineage_changed" AFTER UPDATE OF "name", "kind" OR DELETE OR TRUNCATE ON "models"
    FOR EACH STATEMENT EXECUTE FUNCTION "bump_lineage_version"();
