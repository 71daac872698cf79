# expect: error | read-only
def check_signal(symbol, ticker, klines):
    IndicatorError.args = ()
    return True
