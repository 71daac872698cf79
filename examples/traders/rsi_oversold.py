# Long setups when the 1m RSI(14) of a just-closed candle is oversold.
def check_signal(symbol, ticker, klines):
    rsi = get_latest_rsi(klines["1m"], 14)
    return rsi is not None and rsi < 30
