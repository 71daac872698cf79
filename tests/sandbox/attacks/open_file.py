# expect: error | NameError: name 'open' is not defined
def check_signal(symbol, ticker, klines):
    with open("/tmp/pwned", "w") as f:
        f.write("x")
    return True
