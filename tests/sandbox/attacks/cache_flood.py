# expect: no_match
# Flooding the per-tick indicator cache shared with the other traders: it is bounded per
# window, so this filter cannot push the worker's memory up for the traders after it.
def check_signal(symbol, ticker, klines):
    for period in range(2, 1200):
        get_latest_sma(klines["1m"], period)
        get_latest_sma(klines["1h"][: 400 + period % 100], 3)
    return False
