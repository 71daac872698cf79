# expect: error | NameError
def check_signal(symbol, ticker, klines):
    raise SystemExit(0)
