# charged: memory
# The deferred finally block grabs memory until the worker's limit: the MemoryError must be this
# filter's, not that of the next trader (whose allocations would fail while the hoard is held).
# No global and no hook (``+=`` on a name is native), so it runs after the globals are cleared.
def check_signal(symbol, ticker, klines):
    def trap():
        try:
            yield 1
        finally:
            hoard = []
            while True:
                hoard += [" " * 10000000]
    g = trap()
    next(g)
    def holder():
        return holder, g
    return False
