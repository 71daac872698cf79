-- What a user sees of a paper account (issue 18, part 4).
-- exchange time (ms since the epoch, UTC) of the price a fill used
ALTER TABLE trades ADD COLUMN price_time_ms BIGINT;
-- the fill assumptions the machine trades this account with (set by the machine when it loads the trader)
ALTER TABLE paper_accounts ADD COLUMN taker_rate NUMERIC(10, 8);
ALTER TABLE paper_accounts ADD COLUMN maker_rate NUMERIC(10, 8);
ALTER TABLE paper_accounts ADD COLUMN slippage_bps NUMERIC(10, 4);
