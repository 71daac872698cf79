# expect: error | ValueError: xxxx
# Error text is cut to 2 KiB and the reply stays under 64 KiB.
def check_signal(symbol, ticker, klines):
    raise ValueError("x" * 1000000)
