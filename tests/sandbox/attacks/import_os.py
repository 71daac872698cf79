# expect: rejected | import of "os" is not allowed
import os
def check_signal(symbol, ticker, klines):
    return "BINANCE_API_SECRET" in os.environ
