# expect: timeout
# A filter cannot catch or extend its own limit: the parent's SIGKILL is not an exception.
def check_signal(symbol, ticker, klines):
    while True:
        try:
            while True:
                pass
        except:
            pass
