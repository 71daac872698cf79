# expect: error | NameError: name 'compile' is not defined
def check_signal(symbol, ticker, klines):
    code = compile("import os", "x", "exec")
    return code is not None
