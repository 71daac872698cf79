# expect: no_match
# CVE-2024-47532: AttributeError.obj used to hand out the object the lookup failed on.
def check_signal(symbol, ticker, klines):
    try:
        klines["1m"].does_not_exist
    except AttributeError as exc:
        return exc.obj is not None
    return True
