# expect: rejected | invalid attribute name
# Subclass walking without a dunder in the first step: int.mro() gives object.
def check_signal(symbol, ticker, klines):
    base = int.mro()[-1]
    return len(base.__subclasses__()) > 0
