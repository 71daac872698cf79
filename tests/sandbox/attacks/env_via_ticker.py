# expect: no_match
# Nothing a filter receives carries the process environment.
def check_signal(symbol, ticker, klines):
    blob = str(ticker) + str(klines) + repr(klines["1m"][-1]) + str(get_latest_rsi)
    return "SECRET" in blob or "DATABASE_URL" in blob
