# expect: no_match
# Module state must not survive into the next batch: every batch starts from fresh globals.
seen = []
def check_signal(symbol, ticker, klines):
    seen.append(symbol)
    return len(seen) > 8
