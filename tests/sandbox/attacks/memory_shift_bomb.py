# expect: memory
def check_signal(symbol, ticker, klines):
    return (1 << 10 ** 11) > 0
