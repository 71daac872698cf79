"""Live mode on a real machine process against the simulator's matching engine: the subscriber's keys
arrive sealed, a live trader's orders go to the exchange under their intents' client order ids and the
database matches the exchange's order log and balances; a restart resolves an opening intent by asking
the exchange, never by sending it again; without keys a live trader goes to ``error`` and paper ones run."""

from __future__ import annotations

import time
import uuid
from decimal import ROUND_DOWN
from decimal import Decimal as D

import pytest
from binance import AsyncClient

from control_plane.exchange_keys import ExchangeCredentials, sealed_secrets
from machine.execution import LiveExecutor, exit_ids
from machine.persistence import SignalRepository, TradingRepository

from machine_harness import LIVE_KEY, LIVE_SECRET, LIVE_START_USDT, add_trader, wait_for
from live_testkit import audit
from test_machine_e2e import ALWAYS

pytestmark = pytest.mark.timeout(240)

WIDE = {"stop_loss_pct": 50, "take_profit_pct": 50, "symbols": ["BTCUSDT"], "max_positions": 1}


def live_env() -> dict[str, str]:
    return {**sealed_secrets(ExchangeCredentials(LIVE_KEY, LIVE_SECRET)), "LIVE_RECV_WINDOW_MS": "60000"}


async def fetch(pool, sql: str, *args):
    return [dict(r) for r in await pool.fetch(sql, *args)]


async def protected_position(pool, trader):
    """The trader's position once its exits are on the exchange (its exit list id recorded)."""
    async def protected():
        return await pool.fetchrow("SELECT * FROM positions WHERE trader_id = $1 AND exit_order_list_id IS NOT NULL",
                                   trader)

    return await wait_for(protected, 60, "the position's exits on the exchange")


def of_position(sim, position_id) -> list[str]:
    """Client order ids of every order on the exchange for one position (each as often as it was accepted)."""
    return sorted(o.client_order_id for o in sim.accounts.books[LIVE_KEY].orders.values()
                  if o.client_order_id.endswith(position_id.hex))


def exchange_orders(sim) -> dict[str, object]:
    """The account's orders on the exchange by client order id."""
    return {o.client_order_id: o for o in sim.accounts.books[LIVE_KEY].orders.values()}


async def test_without_keys_a_live_trader_goes_to_error_and_paper_traders_run(machine_stack):
    make_machine, pool, user_id, sim = machine_stack
    live = await add_trader(pool, user_id, "live", ALWAYS, mode="live", **WIDE)
    paper = await add_trader(pool, user_id, "paper", ALWAYS, **WIDE)
    machine = make_machine()
    await machine.start()
    row = await pool.fetchrow("SELECT status, error_message FROM traders WHERE id = $1", live)
    assert row["status"] == "error" and "set-keys" in row["error_message"]

    async def paper_open() -> bool:
        return bool(await pool.fetchval("SELECT count(*) FROM positions WHERE trader_id = $1 AND status = 'open'",
                                        paper))

    await wait_for(paper_open, 60, "the paper trader to open a position")
    assert not sim.accounts.books[LIVE_KEY].orders, "a paper trader never reaches the exchange"
    await machine.post("/shutdown", token=machine.token)
    assert machine.proc.wait(30) == 0


async def test_a_live_trader_trades_on_the_exchange_and_the_database_matches_its_log(machine_stack):
    make_machine, pool, user_id, sim = machine_stack
    trader = await add_trader(pool, user_id, "live", ALWAYS, mode="live", **WIDE)
    machine = make_machine(**live_env())
    await machine.start()
    assert await pool.fetchval("SELECT status FROM traders WHERE id = $1", trader) == "active"

    async def opened():
        return await pool.fetchrow("SELECT * FROM positions WHERE trader_id = $1 AND status = 'open' "
                                   "AND exit_order_list_id IS NOT NULL", trader)

    position = await wait_for(opened, 60, "the live trader's position to open with its exits on the exchange")
    [entry] = await fetch(pool, "SELECT * FROM trades WHERE position_id = $1", position["id"])
    order = exchange_orders(sim)[entry["client_order_id"]]
    [fill] = [t for t in sim.accounts.trades[LIVE_KEY] if t.order_id == order.order_id]
    assert (order.side, order.type, order.status) == ("BUY", "MARKET", "FILLED")
    assert (entry["type"], entry["status"], entry["binance_order_id"]) == ("live", "filled", order.order_id)
    assert (entry["quantity"], entry["price"], entry["fee"], entry["fee_asset"]) == (
        fill.qty, fill.price, fill.commission, fill.commission_asset)
    # the position holds what the exchange credited: the fill less its base-asset commission
    assert position["size"] == fill.qty - fill.commission == sum(sim.accounts.books[LIVE_KEY].balances["BTC"])
    # sized from the exchange account: 10 % of its 10000 USDT
    notional = fill.qty * fill.price
    assert D("900") < notional <= D("1000")

    # protected on the exchange: one OCO selling what it holds, its ids on the position
    exits = exit_ids(position["id"], 1)
    [order_list] = sim.accounts.books[LIVE_KEY].lists.values()
    legs = [sim.accounts.books[LIVE_KEY].orders[i] for i in order_list.order_ids]
    assert (order_list.list_client_order_id, order_list.status, position["exit_attempt"],
            position["exit_order_list_id"]) == (exits.list_id, "EXECUTING", 1, order_list.list_id)
    assert {o.client_order_id: (o.side, o.type, o.orig_qty) for o in legs} == {
        exits.take_profit: ("SELL", "LIMIT_MAKER", position["size"].quantize(D("0.00001"), ROUND_DOWN)),
        exits.stop_loss: ("SELL", "STOP_LOSS_LIMIT", position["size"].quantize(D("0.00001"), ROUND_DOWN))}
    tp_leg = next(o for o in legs if o.type == "LIMIT_MAKER")
    sl_leg = next(o for o in legs if o.type == "STOP_LOSS_LIMIT")
    assert (tp_leg.price, sl_leg.stop_price) == (position["take_profit"], position["stop_loss"])
    assert sl_leg.price == (position["stop_loss"] * D("0.99")).quantize(D("0.01"), ROUND_DOWN)  # limit 1 % below

    answer = await machine.post("/force-exit", token=machine.token, json={"positionId": str(position["id"])})
    assert answer.status_code == 200, answer.text
    closed = await pool.fetchrow("SELECT * FROM positions WHERE id = $1", position["id"])
    assert closed["status"] == "closed"
    trades = await fetch(pool, "SELECT * FROM trades WHERE position_id = $1 ORDER BY created_at", position["id"])
    assert [t["purpose"] for t in trades] == ["open", "close"]
    close = trades[1]
    sell = exchange_orders(sim)[close["client_order_id"]]
    assert (sell.side, sell.status, close["binance_order_id"]) == ("SELL", "FILLED", sell.order_id)
    assert close["quantity"] == sell.executed_qty
    # the exits were cancelled first (they locked the BTC); every other order is one the database wrote first
    book = sim.accounts.books[LIVE_KEY]
    assert book.lists[order_list.list_id].status == "ALL_DONE"
    assert {book.orders[o.order_id].status for o in legs} == {"CANCELED"}
    assert sorted(exchange_orders(sim)) == sorted([t["client_order_id"] for t in trades] + [exits.take_profit,
                                                                                            exits.stop_loss])
    # neither the key nor the secret in any answer or log line of the live run
    for path in ("/health", "/metrics", "/openapi.json"):
        answer = (await machine.get(path)).text
        assert LIVE_KEY not in answer and LIVE_SECRET not in answer, path
    for path in ("/traders", "/positions"):
        answer = (await machine.get(path, headers={"Authorization": f"Bearer {machine.token}"})).text
        assert answer.startswith(("{", "[")) and LIVE_KEY not in answer and LIVE_SECRET not in answer, path
    log = machine.log_path.read_text()
    assert "live_" in log or "exits_placed" in log
    assert LIVE_KEY not in log and LIVE_SECRET not in log
    usdt_free = sim.accounts.books[LIVE_KEY].balances["USDT"][0]
    spent = fill.qty * fill.price
    received = sum(t.qty * t.price - t.commission for t in sim.accounts.trades[LIVE_KEY] if t.order_id == sell.order_id)
    assert usdt_free == D(LIVE_START_USDT) - spent + received
    await machine.post("/shutdown", token=machine.token)
    assert machine.proc.wait(30) == 0


async def test_a_restart_resolves_an_opening_intent_by_asking_the_exchange(machine_stack):
    """Killed between send and answer: the intent is pending and the exchange has its order. Killed
    between intent and send: the intent is pending and the exchange has nothing. The restart opens the
    first on the exchange's fill and cancels the second; neither is sent (again)."""
    make_machine, pool, user_id, sim = machine_stack
    never = "def check_signal(symbol, ticker, klines):\n    return False\n"
    sent = await add_trader(pool, user_id, "sent", never, mode="live", **WIDE)
    unsent = await add_trader(pool, user_id, "unsent", never, mode="live", **{**WIDE, "symbols": ["ETHUSDT"]})
    repo, signals = TradingRepository(pool), SignalRepository(pool)
    intents = {}
    for trader, symbol in ((sent, "BTCUSDT"), (unsent, "ETHUSDT")):
        price = sim.accounts.last_price(symbol, sim.now_ms())
        signal = await signals.create(trader, user_id, symbol, sim.now_ms(), price)
        position_id = uuid.uuid4()
        intents[trader] = await repo.create_open_intent(
            signal_id=signal, trader_id=trader, user_id=user_id, mode="live", symbol=symbol, side="long",
            quantity=D("0.01") if symbol == "BTCUSDT" else D("0.1"), client_order_id="o01" + position_id.hex,
            position_id=position_id, stop_loss=price * D("0.5"), take_profit=price * D("1.5"))
    client = AsyncClient(api_key=LIVE_KEY, api_secret=LIVE_SECRET)
    client.API_URL = sim.rest_url + "/api"
    client.timestamp_offset = (await client.get_server_time())["serverTime"] - int(time.time() * 1000)
    try:  # the order the killed machine sent, under its intent's id
        await client.create_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01",
                                  newClientOrderId=intents[sent].client_order_id, recvWindow=60000)
    finally:
        await client.close_connection()

    machine = make_machine(**live_env())
    await machine.start()
    opened = await pool.fetchrow("SELECT * FROM positions WHERE trader_id = $1", sent)
    order = exchange_orders(sim)[intents[sent].client_order_id]
    [fill] = [t for t in sim.accounts.trades[LIVE_KEY] if t.order_id == order.order_id]
    assert (opened["status"], opened["entry_price"], opened["size"]) == ("open", fill.price, fill.qty - fill.commission)
    assert opened["stop_loss"] is not None and opened["take_profit"] is not None
    assert await pool.fetchval("SELECT binance_order_id FROM trades WHERE id = $1", intents[sent].id) == order.order_id
    cancelled = await pool.fetchrow("SELECT status, error_message FROM trades WHERE id = $1", intents[unsent].id)
    assert cancelled["status"] == "cancelled" and "restarted" in cancelled["error_message"]
    assert await pool.fetchval("SELECT status FROM positions WHERE trader_id = $1", unsent) == "cancelled"
    exits = exit_ids(opened["id"], 1)
    assert sorted(exchange_orders(sim)) == sorted([intents[sent].client_order_id, exits.take_profit, exits.stop_loss]), \
        "nothing was sent (again); the recovered position got its exits"
    protected = await pool.fetchrow("SELECT exit_attempt, exit_order_list_id FROM positions WHERE id = $1", opened["id"])
    assert protected["exit_attempt"] == 1 and protected["exit_order_list_id"] is not None
    await machine.post("/shutdown", token=machine.token)
    assert machine.proc.wait(30) == 0


async def test_an_exit_the_exchange_executes_is_booked_from_its_fill(machine_stack):
    """Tight levels: the exchange's OCO executes one leg; the position closes on that leg's fill, under its
    client order id, with its reason; the other leg expired with it and no market order was sent."""
    make_machine, pool, user_id, sim = machine_stack
    trader = await add_trader(pool, user_id, "tight", ALWAYS, mode="live",
                              **{**WIDE, "stop_loss_pct": 0.3, "take_profit_pct": 0.3})
    machine = make_machine(**live_env())
    await machine.start()

    async def closed():
        return await pool.fetchrow("SELECT * FROM positions WHERE trader_id = $1 AND status = 'closed'", trader)

    position = await wait_for(closed, 120, "an exit of the exchange to close the position")
    await machine.post("/shutdown", token=machine.token)
    assert machine.proc.wait(30) == 0
    trades = await fetch(pool, "SELECT * FROM trades WHERE position_id = $1 AND status = 'filled' ORDER BY created_at",
                         position["id"])
    assert [t["purpose"] for t in trades] == ["open", "close"]
    close = trades[1]
    exits = exit_ids(position["id"], position["exit_attempt"])
    leg = exchange_orders(sim)[close["client_order_id"]]
    assert close["client_order_id"] in (exits.take_profit, exits.stop_loss)
    reason = "take_profit" if close["client_order_id"] == exits.take_profit else "stop_loss"
    assert (position["close_reason"], leg.status, close["binance_order_id"]) == (reason, "FILLED", leg.order_id)
    [fill] = [t for t in sim.accounts.trades[LIVE_KEY] if t.order_id == leg.order_id]
    assert (close["price"], close["quantity"], close["fee"]) == (fill.price, fill.qty, fill.commission)
    other = exchange_orders(sim)[exits.stop_loss if reason == "take_profit" else exits.take_profit]
    assert other.status == "EXPIRED"
    assert all(o.type != "MARKET" or o.side == "BUY" for o in exchange_orders(sim).values()), "no market close"


async def test_an_exit_executed_while_the_machine_was_down_is_booked_at_restart(machine_stack):
    """SIGKILL once the exits are on the exchange; a leg fills while the machine is down; the restart asks
    the exchange about the position's exit list and closes it on that leg's fill, sending nothing."""
    make_machine, pool, user_id, sim = machine_stack
    trader = await add_trader(pool, user_id, "tight", ALWAYS, mode="live",
                              **{**WIDE, "stop_loss_pct": 0.3, "take_profit_pct": 0.3})
    machine = make_machine(**live_env())
    await machine.start()

    position = await protected_position(pool, trader)
    machine.kill()
    assert position["status"] == "open"
    exits = exit_ids(position["id"], 1)
    client = AsyncClient(api_key=LIVE_KEY, api_secret=LIVE_SECRET)
    client.API_URL = sim.rest_url + "/api"
    executor = LiveExecutor(client, D("0.001"), recv_window_ms=60000)
    try:
        await executor.resync_clock()

        async def executed():
            report = await executor.exit_report("BTCUSDT", exits)
            return report if report is not None and report.filled else None

        report = await wait_for(executed, 120, "a leg of the exit list to fill on the exchange")
    finally:
        await client.close_connection()
    orders_before = of_position(sim, position["id"])
    await machine.start()
    closed = await pool.fetchrow("SELECT * FROM positions WHERE id = $1", position["id"])
    kind, leg_id, fill = report.filled
    close = await pool.fetchrow("SELECT * FROM trades WHERE position_id = $1 AND purpose = 'close'", position["id"])
    assert (closed["status"], closed["close_reason"]) == ("closed", kind)
    assert (close["client_order_id"], close["status"], close["price"], close["quantity"], close["fee"]) == (
        leg_id, "filled", fill.price, fill.quantity, fill.fee)
    assert of_position(sim, position["id"]) == orders_before, "the restart sent nothing for the position"
    await machine.post("/shutdown", token=machine.token)
    assert machine.proc.wait(30) == 0


async def outside_client(sim) -> AsyncClient:
    """The subscriber trading the same account by hand (python-binance, clock synced)."""
    client = AsyncClient(api_key=LIVE_KEY, api_secret=LIVE_SECRET)
    client.API_URL = sim.rest_url + "/api"
    client.timestamp_offset = (await client.get_server_time())["serverTime"] - int(time.time() * 1000)
    return client


async def test_coins_sold_outside_the_machine_halt_the_trader_with_what_differs(machine_stack):
    """The exits are cancelled and the coins sold by hand on the exchange: reconciliation finds the
    account short of what the open position holds, halts the trader (HALTED, the amounts in the reason,
    shown in /health) and keeps the position open: nothing is assumed flat."""
    make_machine, pool, user_id, sim = machine_stack
    trader = await add_trader(pool, user_id, "live", ALWAYS, mode="live", **WIDE)
    machine = make_machine(**live_env(), RECONCILE_INTERVAL_S="0.5")
    await machine.start()

    position = await protected_position(pool, trader)
    client = await outside_client(sim)
    try:
        await client._request_api("delete", "orderList", True, data={
            "symbol": "BTCUSDT", "listClientOrderId": exit_ids(position["id"], 1).list_id, "recvWindow": 60000})
        free = sim.accounts.books[LIVE_KEY].balances["BTC"][0].quantize(D("0.00001"), ROUND_DOWN)
        await client.create_order(symbol="BTCUSDT", side="SELL", type="MARKET", quantity=format(free, "f"),
                                  newClientOrderId="by-hand-1", recvWindow=60000)
    finally:
        await client.close_connection()

    async def halted():
        health = (await machine.get("/health")).json()
        return health["reconciliation"]["halted"] or None

    [entry] = await wait_for(halted, 60, "reconciliation to halt the trader")
    assert entry["traderId"] == str(trader) and "BTC" in entry["reason"] and "short by" in entry["reason"]
    state = await pool.fetchrow("SELECT state, reason FROM risk_states WHERE scope = 'trader' AND subject_id = $1",
                                trader)
    assert (state["state"], state["reason"]) == ("HALTED", entry["reason"])
    assert await pool.fetchval("SELECT status FROM positions WHERE id = $1", position["id"]) == "open"
    await machine.post("/shutdown", token=machine.token)
    assert machine.proc.wait(30) == 0


async def test_a_close_sent_before_a_kill_is_booked_from_the_exchange_at_boot(machine_stack):
    """Killed between a close's send and its answer: the closing intent is pending and the exchange
    filled it. At boot, reconciliation asks for its client order id and books the fill; the audit of
    the exchange against the database is sound and nothing was sent again."""
    make_machine, pool, user_id, sim = machine_stack
    trader = await add_trader(pool, user_id, "live", ALWAYS, mode="live", **WIDE)
    machine = make_machine(**live_env())
    await machine.start()

    position = await protected_position(pool, trader)
    machine.kill()
    quantity = position["size"].quantize(D("0.00001"), ROUND_DOWN)
    coid = "c01" + position["id"].hex
    await pool.execute(  # what the killed machine wrote before sending (its exits cancelled first)
        "INSERT INTO trades (position_id, trader_id, user_id, type, purpose, side, symbol, client_order_id, quantity, "
        "status) VALUES ($1, $2, $3, 'live', 'close', 'SELL', 'BTCUSDT', $4, $5, 'pending')",
        position["id"], trader, user_id, coid, quantity)
    await pool.execute("UPDATE positions SET exit_order_list_id = NULL WHERE id = $1", position["id"])
    client = await outside_client(sim)
    try:  # ... and what reached the exchange
        await client._request_api("delete", "orderList", True, data={
            "symbol": "BTCUSDT", "listClientOrderId": exit_ids(position["id"], 1).list_id, "recvWindow": 60000})
        await client.create_order(symbol="BTCUSDT", side="SELL", type="MARKET", quantity=format(quantity, "f"),
                                  newClientOrderId=coid, recvWindow=60000)
    finally:
        await client.close_connection()
    orders_before = of_position(sim, position["id"])
    await machine.start()
    closed = await pool.fetchrow("SELECT status, close_reason FROM positions WHERE id = $1", position["id"])
    assert (closed["status"], closed["close_reason"]) == ("closed", "reconciled")
    sell = exchange_orders(sim)[coid]
    row = await pool.fetchrow("SELECT status, binance_order_id FROM trades WHERE client_order_id = $1", coid)
    assert (row["status"], row["binance_order_id"]) == ("filled", sell.order_id)
    assert of_position(sim, position["id"]) == orders_before, "nothing was sent again for the position"
    sim.freeze()
    await machine.post("/shutdown", token=machine.token)
    assert machine.proc.wait(30) == 0
    report = await audit(pool, sim, LIVE_KEY, {"USDT": D(LIVE_START_USDT)})
    assert report.sound, report


async def test_the_user_stream_resubscribes_and_resyncs_after_a_cut_and_a_termination(machine_stack):
    """Exits the exchange executes arrive on the user data stream; a cut connection and an
    eventStreamTerminated are each followed by a new subscription and a snapshot (reconciliation)
    before the stream's events are handled again."""
    make_machine, pool, user_id, sim = machine_stack
    trader = await add_trader(pool, user_id, "tight", ALWAYS, mode="live",
                              **{**WIDE, "stop_loss_pct": 0.3, "take_profit_pct": 0.3})
    machine = make_machine(**live_env(), RECONCILE_INTERVAL_S="3600")
    await machine.start()

    async def stream() -> dict:
        return (await machine.get("/health")).json()["userStream"]

    first = await stream()
    assert first["connected"] and first["subscriptions"] == 1 and first["resyncs"] == 1

    async def closed_by_exit():
        return await pool.fetchval("SELECT count(*) FROM positions WHERE trader_id = $1 AND status = 'closed' "
                                   "AND close_reason IN ('stop_loss', 'take_profit')", trader)

    await wait_for(closed_by_exit, 120, "an exit of the exchange")
    assert (await stream())["events"] > 0  # fills, list ends and balances arrived on the stream
    runs = (await machine.get("/health")).json()["reconciliation"]["runs"]
    assert sim.drop_user_streams(LIVE_KEY) == 1

    async def resubscribed(n: int):
        s = await stream()
        return s if s["subscriptions"] >= n and s["resyncs"] >= n and s["connected"] else None

    after_cut = await wait_for(lambda: resubscribed(2), 30, "a new subscription after the cut")
    assert after_cut["reconnects"] >= 1
    assert (await machine.get("/health")).json()["reconciliation"]["runs"] > runs  # the snapshot was taken
    assert sim.terminate_user_streams(LIVE_KEY) == 1
    await wait_for(lambda: resubscribed(3), 30, "a new subscription after eventStreamTerminated")
    sim.freeze()

    async def balances_recorded() -> bool:  # the stream's (or the snapshot's) balances are the exchange's
        rows = await pool.fetch("SELECT asset, free, locked FROM exchange_balances WHERE user_id = $1", user_id)
        recorded = {r["asset"]: (r["free"], r["locked"]) for r in rows}
        held = {a: b for a, b in sim.accounts.books[LIVE_KEY].balances.items() if any(b)}
        return all(recorded.get(a) == b for a, b in held.items())

    await wait_for(balances_recorded, 30, "the exchange's balances in the database")
    await machine.post("/shutdown", token=machine.token)
    assert machine.proc.wait(30) == 0
    report = await audit(pool, sim, LIVE_KEY, {"USDT": D(LIVE_START_USDT)})
    assert report.sound, report
