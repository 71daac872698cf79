# A green 1m candle trading more than 3x its 20-candle average volume.
def check_signal(symbol, ticker, klines):
    candles = klines["1m"]
    if len(candles) < 21:
        return False
    average = get_latest_volume_ma(klines["1m"], 20)
    last = candles[-1]
    return average is not None and average > 0 and last.volume > 3 * average and last.close > last.open
