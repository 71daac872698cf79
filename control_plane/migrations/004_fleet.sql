-- 004: the fleet. The reconcile loop keeps one machine per paid subscriber; it
-- needs to know since when a subscription is past due (grace period), to record
-- every action it takes, and to hear of subscription changes within seconds.

ALTER TABLE users ADD COLUMN past_due_since TIMESTAMPTZ;

-- past_due_since follows subscription_status: set when it becomes past_due, cleared otherwise.
CREATE FUNCTION users_track_past_due() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.subscription_status = 'past_due' THEN
    IF TG_OP = 'INSERT' OR OLD.subscription_status IS DISTINCT FROM 'past_due' THEN
      NEW.past_due_since := COALESCE(NEW.past_due_since, NOW());
    END IF;
  ELSE
    NEW.past_due_since := NULL;
  END IF;
  NEW.updated_at := NOW();
  RETURN NEW;
END $$;
CREATE TRIGGER users_past_due BEFORE INSERT OR UPDATE OF subscription_status, tier ON users
  FOR EACH ROW EXECUTE FUNCTION users_track_past_due();

-- Every change a subscriber's machine may depend on is announced on channel
-- fleet_changes with the user id as payload (LISTEN fleet_changes).
CREATE FUNCTION users_notify_fleet() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('fleet_changes', COALESCE(NEW.id, OLD.id)::text);
  RETURN NULL;
END $$;
CREATE TRIGGER users_fleet_insert AFTER INSERT OR DELETE ON users
  FOR EACH ROW EXECUTE FUNCTION users_notify_fleet();
CREATE TRIGGER users_fleet_update AFTER UPDATE OF tier, subscription_status ON users
  FOR EACH ROW WHEN (OLD.tier IS DISTINCT FROM NEW.tier OR OLD.subscription_status IS DISTINCT FROM NEW.subscription_status)
  EXECUTE FUNCTION users_notify_fleet();

-- Every action the fleet takes, with its outcome. No foreign key: the history of
-- a deleted user's machine stays.
CREATE TABLE fleet_events (
  id BIGSERIAL PRIMARY KEY,
  user_id UUID,
  machine_id TEXT,
  action TEXT NOT NULL,
  outcome TEXT NOT NULL CHECK (outcome IN ('ok', 'failed')),
  error TEXT,
  detail JSONB,
  replica TEXT,
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX idx_fleet_events_user ON fleet_events(user_id, created_at);
CREATE INDEX idx_fleet_events_created ON fleet_events(created_at);
