# expect: rejected | not allowed
# CVE-2025-22153: try/except* is refused.
def check_signal(symbol, ticker, klines):
    try:
        return False
    except* ValueError:
        return True
