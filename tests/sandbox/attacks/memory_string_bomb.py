# expect: memory
def check_signal(symbol, ticker, klines):
    return len("a" * (10 ** 11)) > 0
