# expect: error | read-only
def check_signal(symbol, ticker, klines):
    ticker["last_price"] = 0.0
    return True
