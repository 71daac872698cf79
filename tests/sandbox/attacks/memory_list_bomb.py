# expect: memory
def check_signal(symbol, ticker, klines):
    block = [0] * (10 ** 10)
    return len(block) > 0
