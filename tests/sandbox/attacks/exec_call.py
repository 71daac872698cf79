# expect: rejected | Exec calls are not allowed
def check_signal(symbol, ticker, klines):
    exec("import os")
    return True
