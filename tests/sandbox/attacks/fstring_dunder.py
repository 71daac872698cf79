# expect: rejected | invalid attribute name
# f-strings are compiled expressions: dunders inside them are refused too.
def check_signal(symbol, ticker, klines):
    return "os" in f"{symbol.__class__.__init__.__globals__}"
