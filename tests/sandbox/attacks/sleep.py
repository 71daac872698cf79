# expect: rejected | import of "time" is not allowed
import time
def check_signal(symbol, ticker, klines):
    time.sleep(60)
    return False
