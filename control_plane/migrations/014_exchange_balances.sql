-- 014: the live account's balances as the exchange last reported them (issue 23, part 2).
--
-- Written by the machine from every account snapshot (GET /api/v3/account) and every
-- outboundAccountPosition event of the user data stream; quantities in each asset's units.
CREATE TABLE exchange_balances (
  user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  asset TEXT NOT NULL,
  free NUMERIC(38, 18) NOT NULL,
  locked NUMERIC(38, 18) NOT NULL,
  updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
  PRIMARY KEY (user_id, asset)
);

GRANT SELECT, INSERT, UPDATE ON exchange_balances TO trader_machine;
ALTER TABLE exchange_balances ENABLE ROW LEVEL SECURITY;
CREATE POLICY machine_own ON exchange_balances TO trader_machine
  USING (user_id = machine_user_id()) WITH CHECK (user_id = machine_user_id());
