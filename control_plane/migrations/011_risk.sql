-- 011: risk controls and trader metrics (issue 21, part 2).
--
-- Per trader limits (NULL: no limit): max drawdown from the equity peak (halts the trader),
-- daily loss limit (exits only for the rest of the UTC day), cooldown per symbol after a
-- losing close. Per user: a kill switch at a loss of the starting capital (halts every trader).
-- States ACTIVE / REDUCING (exits only) / HALTED per trader and per user, persisted; every
-- transition and every denied order is a risk_events row.

ALTER TABLE traders ADD COLUMN max_drawdown_pct NUMERIC(6, 2) CHECK (max_drawdown_pct > 0 AND max_drawdown_pct <= 100);
ALTER TABLE traders ADD COLUMN daily_loss_limit_pct NUMERIC(6, 2)
  CHECK (daily_loss_limit_pct > 0 AND daily_loss_limit_pct <= 100);
ALTER TABLE traders ADD COLUMN loss_cooldown_minutes INTEGER NOT NULL DEFAULT 0 CHECK (loss_cooldown_minutes >= 0);
ALTER TABLE users ADD COLUMN kill_switch_loss_pct NUMERIC(6, 2)
  CHECK (kill_switch_loss_pct > 0 AND kill_switch_loss_pct <= 100);

CREATE TABLE risk_states (
  scope TEXT NOT NULL CHECK (scope IN ('trader', 'user')),
  subject_id UUID NOT NULL,                    -- the trader's or the user's id
  user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  state TEXT NOT NULL DEFAULT 'ACTIVE' CHECK (state IN ('ACTIVE', 'REDUCING', 'HALTED')),
  reason TEXT,
  set_by TEXT NOT NULL DEFAULT 'risk' CHECK (set_by IN ('risk', 'user')),
  equity_peak NUMERIC(28, 8),                  -- quote asset
  day DATE,                                    -- the UTC day day_start_equity belongs to
  day_start_equity NUMERIC(28, 8),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  PRIMARY KEY (scope, subject_id)
);

CREATE TABLE risk_events (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  trader_id UUID REFERENCES traders(id) ON DELETE CASCADE,
  kind TEXT NOT NULL CHECK (kind IN ('denied', 'state')),
  state TEXT,                                  -- the new state of a 'state' event
  reason TEXT NOT NULL,
  details JSONB NOT NULL DEFAULT '{}'::jsonb,
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX idx_risk_events_user ON risk_events(user_id, created_at DESC);

-- seed 001's trader metrics plus max drawdown and profit factor, per mode, updated on every close
CREATE TABLE trader_metrics (
  trader_id UUID NOT NULL REFERENCES traders(id) ON DELETE CASCADE,
  user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  mode TEXT NOT NULL CHECK (mode IN ('paper', 'live')),
  signals INTEGER NOT NULL DEFAULT 0,
  open_positions INTEGER NOT NULL DEFAULT 0,
  closed_positions INTEGER NOT NULL DEFAULT 0,
  total_pnl NUMERIC(28, 8) NOT NULL DEFAULT 0,
  total_pnl_pct NUMERIC(12, 4) NOT NULL DEFAULT 0,
  wins INTEGER NOT NULL DEFAULT 0,
  losses INTEGER NOT NULL DEFAULT 0,
  win_rate NUMERIC(7, 4),
  avg_win NUMERIC(28, 8),
  avg_loss NUMERIC(28, 8),
  max_drawdown NUMERIC(28, 8) NOT NULL DEFAULT 0,
  max_drawdown_pct NUMERIC(12, 4) NOT NULL DEFAULT 0,
  profit_factor NUMERIC(20, 8),
  last_signal_at TIMESTAMPTZ,
  updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  PRIMARY KEY (trader_id, mode)
);

GRANT SELECT, INSERT, UPDATE ON risk_states, risk_events, trader_metrics TO trader_machine;
-- A machine role reads its own user's kill switch, and nothing else of users.
CREATE FUNCTION user_kill_switch_loss_pct(uid UUID) RETURNS NUMERIC
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT kill_switch_loss_pct FROM users WHERE id = uid AND (machine_user_id() IS NULL OR uid = machine_user_id())
$$;
REVOKE ALL ON FUNCTION user_kill_switch_loss_pct(UUID) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION user_kill_switch_loss_pct(UUID) TO trader_machine;
ALTER TABLE risk_states ENABLE ROW LEVEL SECURITY;
CREATE POLICY machine_own ON risk_states TO trader_machine
  USING (user_id = machine_user_id()) WITH CHECK (user_id = machine_user_id());
ALTER TABLE risk_events ENABLE ROW LEVEL SECURITY;
CREATE POLICY machine_own ON risk_events TO trader_machine
  USING (user_id = machine_user_id()) WITH CHECK (user_id = machine_user_id());
ALTER TABLE trader_metrics ENABLE ROW LEVEL SECURITY;
CREATE POLICY machine_own ON trader_metrics TO trader_machine
  USING (user_id = machine_user_id()) WITH CHECK (user_id = machine_user_id() AND machine_owns_trader(trader_id));
