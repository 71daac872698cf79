# Several helpers, tuple unpacking, walrus, augmented assignment, min/max/round/any/all.
def check_signal(symbol, ticker, klines):
    score = 0
    if (rsi := get_latest_rsi(klines["1m"])) is not None and rsi < 55:
        score += 1
    stoch = get_latest_stochastic(klines["1m"])
    if stoch is not None:
        k, d = stoch
        score += 1 if k > d else 0
    atr = get_latest_atr(klines["1h"], 14)
    hh = get_highest_high(klines["1h"], 24)
    ll = get_lowest_low(klines["1h"], 24)
    if None not in (atr, hh, ll):
        position = round((ticker["last_price"] - ll) / max(hh - ll, 1e-12), 3)
        score += 1 if 0.2 < position < 0.8 else 0
    changes = [get_price_change_percent(klines["1m"], n) for n in (5, 15, 60)]
    if all(c is not None for c in changes) and any(c > 0 for c in changes):
        score += 1
    return score >= 2
