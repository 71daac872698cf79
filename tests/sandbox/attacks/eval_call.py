# expect: rejected | Eval calls are not allowed
def check_signal(symbol, ticker, klines):
    return eval("1 + 1") == 2
