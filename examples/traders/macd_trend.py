# 1m MACD bullish cross, only while the 1h trend is up (close above EMA 50).
def check_signal(symbol, ticker, klines):
    macd = get_macd(klines["1m"])
    if macd is None:
        return False
    hist = macd[2]
    if len(hist) < 2 or hist[-1] is None or hist[-2] is None:
        return False
    crossed_up = hist[-2] <= 0 < hist[-1]
    ema_1h = get_latest_ema(klines["1h"], 50)
    closes_1h = get_closes(klines["1h"])
    trend_up = ema_1h is not None and len(closes_1h) > 0 and closes_1h[-1] > ema_1h
    return crossed_up and trend_up
