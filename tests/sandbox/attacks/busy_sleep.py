# expect: timeout
# "Sleeping" without a clock: an endless iterator.
def check_signal(symbol, ticker, klines):
    for _ in iter(int, 1):
        pass
    return False
