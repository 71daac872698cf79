# A classic LLM filter: RSI threshold with a None guard.
def check_signal(symbol, ticker, klines):
    rsi = get_latest_rsi(klines["1m"], 14)
    if rsi is None:
        return False
    return rsi < 45
