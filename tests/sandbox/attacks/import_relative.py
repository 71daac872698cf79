# expect: rejected | is not allowed
from . import _worker
def check_signal(symbol, ticker, klines):
    return True
