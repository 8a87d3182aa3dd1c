-- The output name of a merge is reserved from the moment it is requested until it ends: two
-- queued or running merges cannot produce models of one name. (COMPLETED merges' names belong to
-- their models, whose names are unique themselves.)
CREATE UNIQUE INDEX "merges_output_name_active_key" ON "merges"("output_name") WHERE "status" IN ('QUEUED', 'RUNNING');
