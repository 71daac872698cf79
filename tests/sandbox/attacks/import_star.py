# expect: rejected | not allowed
from math import *
def check_signal(symbol, ticker, klines):
    return pi > 3
