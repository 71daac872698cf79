-- Paper accounts hold per-asset balances, as a Binance Spot account does (issue 18, part 2).
-- free may be negative for a base asset borrowed by a paper short; locked is never negative.
CREATE TABLE paper_balances (
  trader_id UUID NOT NULL REFERENCES paper_accounts(trader_id) ON DELETE CASCADE,
  asset TEXT NOT NULL,
  free NUMERIC(28, 8) NOT NULL DEFAULT 0,
  locked NUMERIC(28, 8) NOT NULL DEFAULT 0 CHECK (locked >= 0),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  PRIMARY KEY (trader_id, asset)
);
INSERT INTO paper_balances (trader_id, asset, free) SELECT trader_id, quote_asset, balance FROM paper_accounts;
ALTER TABLE paper_accounts DROP COLUMN balance;

-- quote asset locked for this position: the open order's reservation while pending,
-- a short's collateral and sale proceeds while open; 0 otherwise
ALTER TABLE positions ADD COLUMN reserved NUMERIC(28, 8) NOT NULL DEFAULT 0 CHECK (reserved >= 0);
-- a paper short: a 1x margin short that live spot cannot place
ALTER TABLE positions ADD COLUMN paper_only BOOLEAN NOT NULL DEFAULT FALSE;
