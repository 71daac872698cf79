# expect: rejected | is not allowed
from builtins import open
def check_signal(symbol, ticker, klines):
    return open("/proc/self/environ").read() != ""
