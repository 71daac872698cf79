# expect: match
# Shadowing a helper in the filter's own module affects only this filter (and only this batch).
def get_latest_rsi(candles, period=14):
    return 0.0
def check_signal(symbol, ticker, klines):
    return get_latest_rsi(klines["1m"], 14) < 50
