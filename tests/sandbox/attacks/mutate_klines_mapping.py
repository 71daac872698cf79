# expect: error | read-only
def check_signal(symbol, ticker, klines):
    klines["1m"] = klines["1h"]
    return True
