# expect: rejected | starts with "_"
def check_signal(symbol, ticker, klines):
    return __import__("os").getenv("BINANCE_API_SECRET") is not None
