# expect: no_match
# A filter that catches its own MemoryError is contained and the worker stays usable.
def check_signal(symbol, ticker, klines):
    try:
        block = [0] * (10 ** 10)
    except Exception:
        return False
    return True
