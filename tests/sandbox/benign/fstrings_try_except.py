# f-strings, print, try/except around helpers and division.
def check_signal(symbol, ticker, klines):
    try:
        upper, middle, lower = get_latest_bollinger_bands(klines["1m"], 20, 2.0)
    except (TypeError, ValueError):
        return False
    price = ticker["last_price"]
    try:
        width = (upper - lower) / middle
    except ZeroDivisionError:
        width = 0.0
    label = f"{symbol}: price={price:.4f} width={width:.2%} bands=({lower:.2f}, {upper:.2f})"
    print(label)
    return price < middle and width > 0.001 and len(label) > 10
