# expect: error | RecursionError
def check_signal(symbol, ticker, klines):
    def down(n):
        return down(n + 1) + 1
    return down(0) > 0
