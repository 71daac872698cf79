# expect: timeout
def check_signal(symbol, ticker, klines):
    while True:
        print("x" * 1000)
