# expect: rejected | starts with "_"
def check_signal(symbol, ticker, klines):
    __builtins__["len"] = lambda x: 0
    return True
