# expect: memory
# An f-string width is another allocation bomb.
def check_signal(symbol, ticker, klines):
    return len(f"{symbol:>{10 ** 11}}") > 0
