# expect: error | read-only
# Mutating the inputs: a later filter must still see the real candles.
def check_signal(symbol, ticker, klines):
    klines["1m"][-1][4] = 0.0
    return True
