# expect: rejected | no top-level function check_signal
def check(symbol, ticker, klines):
    return True
