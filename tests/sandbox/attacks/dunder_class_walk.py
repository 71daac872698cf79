# expect: rejected | invalid attribute name
# Subclass walking to reach os via object.__subclasses__().
def check_signal(symbol, ticker, klines):
    for cls in ().__class__.__base__.__subclasses__():
        if cls.__name__ == "Popen":
            return True
    return False
