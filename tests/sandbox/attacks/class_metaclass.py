# expect: rejected | class definitions are not allowed
class Evil(type):
    pass
def check_signal(symbol, ticker, klines):
    return True
