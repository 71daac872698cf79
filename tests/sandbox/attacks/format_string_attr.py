# expect: error | str.format() is not available
# Format-string attribute access: str.format walks attributes in C without the guard.
def check_signal(symbol, ticker, klines):
    leaked = "{0.__class__.__init__.__globals__}".format(symbol)
    return "os" in leaked
