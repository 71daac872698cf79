-- 007: each subscriber's machine connects as a role of its own, machine_<user id hex>
-- (created by the control plane when it provisions the machine, member of trader_machine),
-- and row-level security limits that role to the subscriber's rows. The control plane
-- connects as the tables' owner, which row-level security does not restrict.

DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'trader_machine') THEN
    CREATE ROLE trader_machine NOLOGIN;
  END IF;
END $$;

-- The subscriber a machine role belongs to; NULL for every other role.
CREATE FUNCTION machine_user_id() RETURNS UUID LANGUAGE sql STABLE AS $$
  SELECT CASE WHEN current_user ~ '^machine_[0-9a-f]{32}$' THEN substring(current_user FROM 9)::uuid END
$$;

-- A trader of the machine's own subscriber.
CREATE FUNCTION machine_owns_trader(trader UUID) RETURNS BOOLEAN LANGUAGE sql STABLE AS $$
  SELECT EXISTS (SELECT 1 FROM traders WHERE id = trader AND user_id = machine_user_id())
$$;

GRANT USAGE ON SCHEMA public TO trader_machine;
GRANT EXECUTE ON FUNCTION machine_user_id(), machine_owns_trader(UUID) TO trader_machine;
GRANT SELECT ON schema_migrations TO trader_machine;
-- What the machine does, and nothing else: no DELETE, no users, no fleet_events.
GRANT SELECT, UPDATE ON traders TO trader_machine;
GRANT SELECT, INSERT, UPDATE ON signals, positions, trades, analysis_history, paper_accounts, paper_balances
  TO trader_machine;
GRANT SELECT ON fly_machines TO trader_machine;
GRANT UPDATE (last_heartbeat, stats, status, updated_at) ON fly_machines TO trader_machine;

ALTER TABLE traders ENABLE ROW LEVEL SECURITY;
CREATE POLICY machine_own ON traders TO trader_machine
  USING (user_id = machine_user_id()) WITH CHECK (user_id = machine_user_id());

ALTER TABLE fly_machines ENABLE ROW LEVEL SECURITY;
CREATE POLICY machine_own ON fly_machines TO trader_machine
  USING (user_id = machine_user_id()) WITH CHECK (user_id = machine_user_id());

ALTER TABLE signals ENABLE ROW LEVEL SECURITY;
CREATE POLICY machine_own ON signals TO trader_machine
  USING (user_id = machine_user_id())
  WITH CHECK (user_id = machine_user_id() AND machine_owns_trader(trader_id));

ALTER TABLE positions ENABLE ROW LEVEL SECURITY;
CREATE POLICY machine_own ON positions TO trader_machine
  USING (user_id = machine_user_id())
  WITH CHECK (user_id = machine_user_id() AND machine_owns_trader(trader_id));

ALTER TABLE trades ENABLE ROW LEVEL SECURITY;
CREATE POLICY machine_own ON trades TO trader_machine
  USING (user_id = machine_user_id())
  WITH CHECK (user_id = machine_user_id() AND machine_owns_trader(trader_id));

ALTER TABLE analysis_history ENABLE ROW LEVEL SECURITY;
CREATE POLICY machine_own ON analysis_history TO trader_machine
  USING (user_id = machine_user_id())
  WITH CHECK (user_id = machine_user_id() AND machine_owns_trader(trader_id));

ALTER TABLE paper_accounts ENABLE ROW LEVEL SECURITY;
CREATE POLICY machine_own ON paper_accounts TO trader_machine
  USING (user_id = machine_user_id())
  WITH CHECK (user_id = machine_user_id() AND machine_owns_trader(trader_id));

ALTER TABLE paper_balances ENABLE ROW LEVEL SECURITY;
CREATE POLICY machine_own ON paper_balances TO trader_machine
  USING (machine_owns_trader(trader_id)) WITH CHECK (machine_owns_trader(trader_id));
