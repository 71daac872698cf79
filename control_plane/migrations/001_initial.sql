-- 001: initial schema (seed 002 "Database Schema", adapted: Python filters,
-- trader risk and mode, paper accounts, order intents with client order ids).
-- Money columns are NUMERIC: prices in the quote asset, sizes in the base asset.

CREATE TABLE users (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  email TEXT UNIQUE NOT NULL,
  tier TEXT NOT NULL CHECK (tier IN ('free', 'pro', 'elite', 'power')),
  subscription_status TEXT CHECK (subscription_status IN ('active', 'cancelled', 'past_due')),
  binance_api_key TEXT,      -- encrypted (Fernet token), never plain text
  binance_secret_key TEXT,   -- encrypted (Fernet token), never plain text
  paper_trading_enabled BOOLEAN NOT NULL DEFAULT true,
  real_trading_enabled BOOLEAN NOT NULL DEFAULT false,
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX idx_users_tier ON users(tier);

CREATE TABLE fly_machines (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  machine_id TEXT UNIQUE NOT NULL,            -- Fly machine id
  status TEXT NOT NULL CHECK (status IN ('provisioning', 'starting', 'running', 'stopping', 'stopped', 'destroyed')),
  ip_address TEXT,
  http_url TEXT,                               -- where the control plane reaches the machine's HTTP API
  region TEXT,
  memory_mb INTEGER,
  image TEXT,
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  last_heartbeat TIMESTAMPTZ,
  stats JSONB,                                 -- the machine's own counters, written with each heartbeat
  destroyed_at TIMESTAMPTZ,
  destroy_reason TEXT
);
CREATE INDEX idx_fly_machines_user_id ON fly_machines(user_id);
CREATE INDEX idx_fly_machines_status ON fly_machines(status);
-- one live machine per subscriber
CREATE UNIQUE INDEX uq_fly_machines_live_user ON fly_machines(user_id) WHERE status <> 'destroyed';

CREATE TABLE traders (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  description TEXT,
  filter_code TEXT NOT NULL,                   -- Python, def check_signal(symbol, ticker, klines) -> bool
  ai_instructions TEXT NOT NULL,
  timeframes TEXT[] NOT NULL CHECK (cardinality(timeframes) > 0),
  check_interval TEXT NOT NULL,                -- '5s', '1m', '1m_close', '1h_close', ...
  reanalysis_interval TEXT NOT NULL,
  symbols TEXT[],                              -- NULL = every USDT spot symbol the exchange lists as TRADING
  mode TEXT NOT NULL DEFAULT 'paper' CHECK (mode IN ('paper', 'live')),
  stop_loss_pct NUMERIC(10, 4) NOT NULL DEFAULT 2 CHECK (stop_loss_pct > 0 AND stop_loss_pct < 100),
  take_profit_pct NUMERIC(10, 4) NOT NULL DEFAULT 4 CHECK (take_profit_pct > 0),
  position_size_pct NUMERIC(10, 4) NOT NULL DEFAULT 10 CHECK (position_size_pct > 0 AND position_size_pct <= 100),
  max_positions INTEGER NOT NULL DEFAULT 3 CHECK (max_positions >= 0),
  status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused', 'error')),
  error_message TEXT,
  version INTEGER NOT NULL DEFAULT 1,          -- bumped on every change of code or settings
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX idx_traders_user_id ON traders(user_id);
CREATE INDEX idx_traders_status ON traders(status);

-- Paper quote balance per trader: balance = start_balance + sells - buys - fees.
CREATE TABLE paper_accounts (
  trader_id UUID PRIMARY KEY REFERENCES traders(id) ON DELETE CASCADE,
  user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  quote_asset TEXT NOT NULL DEFAULT 'USDT',
  start_balance NUMERIC(28, 8) NOT NULL,
  balance NUMERIC(28, 8) NOT NULL,
  updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

CREATE TABLE signals (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  trader_id UUID NOT NULL REFERENCES traders(id) ON DELETE CASCADE,
  user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  symbol TEXT NOT NULL,
  timestamp TIMESTAMPTZ NOT NULL,              -- market time of the matching tick
  status TEXT NOT NULL CHECK (status IN ('new', 'watching', 'position_open', 'closed')),
  trigger_price NUMERIC(20, 8) NOT NULL,
  current_price NUMERIC(20, 8),
  closed_at TIMESTAMPTZ,
  close_reason TEXT,
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
CREATE INDEX idx_signals_trader_id ON signals(trader_id);
CREATE INDEX idx_signals_user_id ON signals(user_id);
CREATE INDEX idx_signals_status ON signals(status);
CREATE INDEX idx_signals_symbol ON signals(symbol);
CREATE INDEX idx_signals_timestamp ON signals(timestamp DESC);

CREATE TABLE positions (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  signal_id UUID NOT NULL REFERENCES signals(id) ON DELETE CASCADE,
  trader_id UUID NOT NULL REFERENCES traders(id) ON DELETE CASCADE,
  user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  mode TEXT NOT NULL CHECK (mode IN ('paper', 'live')),
  symbol TEXT NOT NULL,
  side TEXT NOT NULL CHECK (side IN ('long', 'short')),
  status TEXT NOT NULL CHECK (status IN ('pending', 'open', 'closed', 'cancelled')),
  entry_price NUMERIC(20, 8),                  -- NULL while the opening order is pending
  size NUMERIC(20, 8) NOT NULL,                -- base asset
  stop_loss NUMERIC(20, 8),
  stop_loss_order_id BIGINT,
  take_profit NUMERIC(20, 8),
  take_profit_order_id BIGINT,
  exit_price NUMERIC(20, 8),
  fees NUMERIC(20, 8) NOT NULL DEFAULT 0,      -- quote asset, entry + exit
  pnl NUMERIC(20, 8),                          -- realised, quote asset, after fees
  pnl_percent NUMERIC(10, 4),
  opened_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  closed_at TIMESTAMPTZ,
  close_reason TEXT
);
CREATE INDEX idx_positions_signal_id ON positions(signal_id);
CREATE INDEX idx_positions_trader_id ON positions(trader_id);
CREATE INDEX idx_positions_user_id ON positions(user_id);
CREATE INDEX idx_positions_status ON positions(status);
CREATE INDEX idx_positions_symbol ON positions(symbol);
-- at most one live position per trader and symbol
CREATE UNIQUE INDEX uq_positions_live ON positions(trader_id, symbol) WHERE status IN ('pending', 'open');

CREATE TABLE trades (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  position_id UUID NOT NULL REFERENCES positions(id) ON DELETE CASCADE,
  trader_id UUID NOT NULL REFERENCES traders(id) ON DELETE CASCADE,
  user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  type TEXT NOT NULL CHECK (type IN ('paper', 'live')),
  purpose TEXT NOT NULL CHECK (purpose IN ('open', 'close')),
  side TEXT NOT NULL CHECK (side IN ('BUY', 'SELL')),
  symbol TEXT NOT NULL,
  client_order_id TEXT NOT NULL UNIQUE,        -- deterministic; Binance newClientOrderId
  price NUMERIC(20, 8),                        -- fill price (NULL while pending)
  quantity NUMERIC(20, 8) NOT NULL,            -- base asset
  fee NUMERIC(20, 8) NOT NULL DEFAULT 0,
  fee_asset TEXT,
  status TEXT NOT NULL CHECK (status IN ('pending', 'filled', 'cancelled', 'failed')),
  binance_order_id BIGINT,
  error_message TEXT,
  created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  executed_at TIMESTAMPTZ
);
CREATE INDEX idx_trades_position_id ON trades(position_id);
CREATE INDEX idx_trades_user_id ON trades(user_id);
CREATE INDEX idx_trades_type ON trades(type);
CREATE INDEX idx_trades_executed_at ON trades(executed_at DESC);
-- one order in flight or filled per position and purpose (a cancelled intent may be retried)
CREATE UNIQUE INDEX uq_trades_position_purpose ON trades(position_id, purpose) WHERE status IN ('pending', 'filled');

CREATE TABLE analysis_history (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  signal_id UUID NOT NULL REFERENCES signals(id) ON DELETE CASCADE,
  trader_id UUID NOT NULL REFERENCES traders(id) ON DELETE CASCADE,
  user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  position_id UUID REFERENCES positions(id) ON DELETE SET NULL,  -- set for re-analyses
  timestamp TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  decision TEXT NOT NULL,                      -- as received; may be unknown (then never executed)
  executable BOOLEAN NOT NULL,
  rejection_reason TEXT,                       -- why it was not executed
  reasoning TEXT NOT NULL,
  confidence INTEGER CHECK (confidence >= 0 AND confidence <= 100),
  market_data JSONB,
  metadata JSONB
);
CREATE INDEX idx_analysis_history_signal_id ON analysis_history(signal_id);
CREATE INDEX idx_analysis_history_trader_id ON analysis_history(trader_id);
CREATE INDEX idx_analysis_history_user_id ON analysis_history(user_id);
CREATE INDEX idx_analysis_history_timestamp ON analysis_history(timestamp DESC);
