# expect: error | expected a bool
def check_signal(symbol, ticker, klines):
    return 1
