# expect: error | integer power too large
def check_signal(symbol, ticker, klines):
    x = 7
    x **= 10 ** 9
    return pow(3, 10 ** 10) > x
