# expect: error | integer power too large
def check_signal(symbol, ticker, klines):
    return 10 ** 10 ** 10 > 0
