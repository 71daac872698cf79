# expect: error | read-only
# Helper results are tuples shared through the per-tick cache: they cannot be changed.
def check_signal(symbol, ticker, klines):
    closes = get_closes(klines["1m"])
    closes[-1] = 0.0
    return True
