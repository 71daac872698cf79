# expect: error | read-only
import math
def check_signal(symbol, ticker, klines):
    math.sqrt = abs
    return True
