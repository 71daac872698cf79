-- 009: traders generated from a sentence by an LLM (POST /generate-trader,
-- `control-plane traders generate`). One row per generation, written before the LLM is
-- asked ('running') and closed as 'saved' (with the paused trader it created) or 'failed'
-- (with the reason), so every generation's tokens and cost are accounted for even when it
-- produced nothing. Machines have no grant on this table.

CREATE TABLE trader_generations (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  trader_id UUID REFERENCES traders(id) ON DELETE SET NULL,
  request TEXT NOT NULL,                       -- the user's description
  status TEXT NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'saved', 'failed')),
  reason TEXT,                                 -- why it failed
  model TEXT,
  prompt_version TEXT NOT NULL,
  rounds INTEGER NOT NULL DEFAULT 0,           -- LLM answers asked for (1 + repair rounds)
  usage JSONB NOT NULL DEFAULT '{}'::jsonb,    -- token counts summed over the rounds
  cost_usd NUMERIC,
  latency_ms DOUBLE PRECISION,
  repairs JSONB NOT NULL DEFAULT '[]'::jsonb,  -- the rejection sent back in each repair round
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  finished_at TIMESTAMPTZ
);

CREATE INDEX idx_trader_generations_user ON trader_generations(user_id, created_at DESC);
