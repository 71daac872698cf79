# Candle access by index and by name, negative indexing, slicing, len, volume spike.
def check_signal(symbol, ticker, klines):
    k = klines["1m"]
    if len(k) < 25:
        return False
    last = k[-1]
    volumes = [c.volume for c in k[-21:-1]]
    average = sum(volumes) / len(volumes)
    assert last[5] == last.volume and last[0] == last.open_time
    is_green = last.close >= last.open
    closed_times_ok = all(b.open_time > a.open_time for a, b in zip(k[-5:-1], k[-4:]))
    return closed_times_ok and is_green and last.volume > 1.2 * average
