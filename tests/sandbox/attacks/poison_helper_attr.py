# expect: error | read-only
# Poisoning a helper for the next filter or tick.
def check_signal(symbol, ticker, klines):
    get_latest_rsi.cached = 0.0
    return True
