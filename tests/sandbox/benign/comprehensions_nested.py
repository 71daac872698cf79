# Comprehensions, nested functions, lambdas, sorted/reversed/zip/enumerate, dicts.
def check_signal(symbol, ticker, klines):
    candles = klines["1m"]

    def body(c):
        return abs(c.close - c.open)

    def wick(c):
        return (c.high - c.low) - body(c)

    recent = candles[-20:]
    bodies = [body(c) for c in recent]
    avg_body = sum(bodies) / len(bodies) if bodies else 0.0
    big = {i: b for i, b in enumerate(bodies) if b > avg_body}
    ranked = sorted(zip(bodies, reversed(range(len(bodies)))), key=lambda p: (-p[0], p[1]))
    green = sum(1 for c in recent if c.close > c.open)
    wicks = max((wick(c) for c in recent), default=0.0)
    return len(big) >= 5 and green >= 10 and ranked[0][0] >= wicks / 4
