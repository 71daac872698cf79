# expect: timeout
def check_signal(symbol, ticker, klines):
    while True:
        pass
