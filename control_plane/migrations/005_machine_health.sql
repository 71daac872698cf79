-- 005: machine health. A machine whose heartbeat stops is marked 'error' and
-- restarted (restarted_at records when); a heartbeat brings it back to 'running'.

ALTER TABLE fly_machines DROP CONSTRAINT fly_machines_status_check;
ALTER TABLE fly_machines ADD CONSTRAINT fly_machines_status_check
  CHECK (status IN ('provisioning', 'starting', 'running', 'error', 'stopping', 'stopped', 'destroyed'));
ALTER TABLE fly_machines ADD COLUMN restarted_at TIMESTAMPTZ;
