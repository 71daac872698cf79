# expect: error | NameError: name 'type' is not defined
def check_signal(symbol, ticker, klines):
    return type(symbol)("x") == "x"
