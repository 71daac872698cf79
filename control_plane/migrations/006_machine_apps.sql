-- 006: one Fly app per subscriber. The row records the app its machine lives in
-- (NULL for machines made before: they live in the shared FLY_APP_NAME app).

ALTER TABLE fly_machines ADD COLUMN app_name TEXT;
