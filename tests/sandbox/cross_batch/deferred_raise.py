# charged: no_match
# Deferred code that raises: an exception in a finaliser is not raised by the interpreter but
# handed to sys.unraisablehook. It must not print the filter's text (escape sequences included)
# to the machine's log, nor change another filter's result.
def check_signal(symbol, ticker, klines):
    error = ValueError
    text = "\x1b[2J deferred " + symbol
    def trap():
        try:
            yield 1
        finally:
            raise error(text)
    g = trap()
    next(g)
    def holder():
        return holder, g
    return False
