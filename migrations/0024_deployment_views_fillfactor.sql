-- Room on each page of the deployment view for the new version of a row:
-- every event after the request rewrites its row, and no change touches an
-- indexed column (id, owner, created_at), so with free space on the page
-- PostgreSQL updates it in place (a heap-only tuple: no new index entries,
-- no page elsewhere). Measured on a 250,000-row view: a wave of 1,000
-- updates spent 72 ms writing rows at the default (full pages) and 3 ms at
-- fillfactor 50 (docs/measurements.md, "Rebuild speed"). New pages get it;
-- a rebuild creates the table afresh with it.
ALTER TABLE deployment_views SET (fillfactor = 70);
