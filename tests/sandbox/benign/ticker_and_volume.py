# Ticker fields and the volume helpers.
def check_signal(symbol, ticker, klines):
    if ticker["last_price"] is None or ticker["quote_volume"] is None:
        return False
    vol_ma = get_latest_volume_ma(klines["1m"], 20)
    obv = get_obv(klines["1m"])
    rising_obv = obv[-1] is not None and obv[-10] is not None and obv[-1] > obv[-10]
    liquid = ticker["quote_volume"] > 1000
    return liquid and vol_ma is not None and rising_obv and ticker["symbol"] == symbol
