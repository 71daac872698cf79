-- 013: a live position's exits on the exchange (issue 23, part 1).
--
-- A live long is protected by one OCO order list (Binance POST /api/v3/orderList/oco): a
-- LIMIT_MAKER take-profit above and a STOP_LOSS below, selling what the position holds. Each
-- placement is an attempt; its client ids derive from (position, attempt)
-- (machine.execution.exit_ids), so `exit_attempt` is written before the list is sent and the
-- exchange is asked about that attempt after a restart. `exit_order_list_id` is the exchange's
-- orderListId once the list was acknowledged; NULL while placing, after a cancel, or for paper.
ALTER TABLE positions ADD COLUMN exit_attempt INT NOT NULL DEFAULT 0 CHECK (exit_attempt BETWEEN 0 AND 99);
ALTER TABLE positions ADD COLUMN exit_order_list_id BIGINT;
