# expect: no_match
# print output is capped; a bounded flood finishes normally.
def check_signal(symbol, ticker, klines):
    for i in range(20000):
        print("flood", i, "x" * 200)
    return False
