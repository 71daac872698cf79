-- 010: every executed decision is an order sequence (issue 21, part 1), recorded step by step
-- before each step is taken, so that a restart resumes or ends it cleanly.
--
-- A position now changes size while open: scale_in adds an 'increase' fill, partial_close and
-- scale_out take a 'reduce' fill. Its cost basis is kept so that each reduce realises PnL at the
-- average cost (machine.accounts): long = quote spent on what is held, short = sale proceeds
-- kept for what is owed.

ALTER TABLE trades DROP CONSTRAINT IF EXISTS trades_purpose_check;
ALTER TABLE trades ADD CONSTRAINT trades_purpose_check CHECK (purpose IN ('open', 'close', 'increase', 'reduce'));
-- the order sequence step an 'increase' or 'reduce' order carries out
ALTER TABLE trades ADD COLUMN sequence_id UUID;
ALTER TABLE trades ADD COLUMN step INTEGER;
ALTER TABLE trades ADD COLUMN reserved NUMERIC(28, 8) NOT NULL DEFAULT 0 CHECK (reserved >= 0);  -- quote an 'increase' intent locked (paper)
-- one opening and one closing order per position stay unique; increase/reduce are unique per step
DROP INDEX IF EXISTS uq_trades_position_purpose;
CREATE UNIQUE INDEX uq_trades_position_purpose ON trades(position_id, purpose)
  WHERE status IN ('pending', 'filled') AND purpose IN ('open', 'close');
CREATE UNIQUE INDEX uq_trades_sequence_step ON trades(sequence_id, step)
  WHERE status IN ('pending', 'filled') AND sequence_id IS NOT NULL;

ALTER TABLE positions ADD COLUMN cost_basis NUMERIC(28, 8);
ALTER TABLE positions ADD COLUMN realized_pnl NUMERIC(28, 8) NOT NULL DEFAULT 0;
UPDATE positions p SET cost_basis = CASE WHEN p.side = 'long' THEN t.price * t.quantity
                                         ELSE t.price * t.quantity - t.fee END
  FROM trades t
 WHERE t.position_id = p.id AND t.purpose = 'open' AND t.status = 'filled' AND p.status = 'open';

CREATE TABLE order_sequences (
  id UUID PRIMARY KEY,
  user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  trader_id UUID NOT NULL REFERENCES traders(id) ON DELETE CASCADE,
  signal_id UUID REFERENCES signals(id) ON DELETE SET NULL,
  analysis_id UUID REFERENCES analysis_history(id) ON DELETE SET NULL,
  position_id UUID REFERENCES positions(id) ON DELETE SET NULL,  -- the position it acts on, if any
  symbol TEXT NOT NULL,
  decision TEXT NOT NULL,
  status TEXT NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'done', 'failed')),
  error TEXT,
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  finished_at TIMESTAMPTZ
);
CREATE INDEX idx_order_sequences_running ON order_sequences(user_id) WHERE status = 'running';
CREATE INDEX idx_order_sequences_trader ON order_sequences(trader_id, created_at DESC);

CREATE TABLE order_sequence_steps (
  sequence_id UUID NOT NULL REFERENCES order_sequences(id) ON DELETE CASCADE,
  step INTEGER NOT NULL CHECK (step >= 0),
  user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  kind TEXT NOT NULL CHECK (kind IN ('open', 'close', 'reduce', 'increase', 'set_levels')),
  status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'done', 'failed')),
  params JSONB NOT NULL DEFAULT '{}'::jsonb,   -- what the step does (side, fraction, quantity, levels, position id)
  result JSONB,                                -- what it did (fill, levels) or why it failed
  started_at TIMESTAMPTZ,
  finished_at TIMESTAMPTZ,
  PRIMARY KEY (sequence_id, step)
);

GRANT SELECT, INSERT, UPDATE ON order_sequences, order_sequence_steps TO trader_machine;
ALTER TABLE order_sequences ENABLE ROW LEVEL SECURITY;
CREATE POLICY machine_own ON order_sequences TO trader_machine
  USING (user_id = machine_user_id())
  WITH CHECK (user_id = machine_user_id() AND machine_owns_trader(trader_id));
ALTER TABLE order_sequence_steps ENABLE ROW LEVEL SECURITY;
CREATE POLICY machine_own ON order_sequence_steps TO trader_machine
  USING (user_id = machine_user_id()) WITH CHECK (user_id = machine_user_id());
