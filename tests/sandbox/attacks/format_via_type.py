# expect: error | str.format() is not available
# str.format reached through the type instead of an instance.
def check_signal(symbol, ticker, klines):
    return "os" in str.format("{0.__class__}", symbol)
