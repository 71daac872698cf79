# expect: error | AttributeError
# The candle sequence must not hand out a numpy array (ndarray.ctypes is a memory primitive).
def check_signal(symbol, ticker, klines):
    array = klines["1m"].column(4)
    return array.ctypes.data > 0
