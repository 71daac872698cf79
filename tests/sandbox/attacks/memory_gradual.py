# expect: memory
def check_signal(symbol, ticker, klines):
    hoard = []
    while True:
        hoard.append(" " * 10 ** 7)
