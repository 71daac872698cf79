# MACD cross on 1m, gated by the 1h trend (EMA 50), using the series twins.
def check_signal(symbol, ticker, klines):
    macd, signal, hist = get_macd(klines["1m"])
    if hist[-1] is None or hist[-2] is None:
        return False
    crossed_up = hist[-2] < 0 <= hist[-1]
    crossed_down = hist[-2] > 0 >= hist[-1]
    ema = get_latest_ema(klines["1h"], 50)
    uptrend = ema is not None and klines["1h"][-1].close > ema
    return (crossed_up and uptrend) or (crossed_down and not uptrend) or macd[-1] > signal[-1]
