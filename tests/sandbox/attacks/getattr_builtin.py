# expect: error | NameError: name 'getattr' is not defined (not available in filters)
def check_signal(symbol, ticker, klines):
    return getattr(symbol, "__class__") == str
