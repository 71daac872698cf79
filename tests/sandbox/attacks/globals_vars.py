# expect: error | NameError: name 'globals' is not defined
def check_signal(symbol, ticker, klines):
    return "os" in globals() or "os" in vars()
