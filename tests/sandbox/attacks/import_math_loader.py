# expect: rejected | invalid attribute name
# Import tricks: reach the import machinery through an allowed module.
import math
def check_signal(symbol, ticker, klines):
    return math.__loader__.load_module("os") is not None
