# charged: error | re-creates itself
# A finaliser that re-arms itself: every collection finalises one trap and makes another, so it
# kept striking in later batches, even after its trader was unloaded.
def check_signal(symbol, ticker, klines):
    nx = next
    def arm():
        def trap():
            try:
                yield 1
            finally:
                arm()
        g = trap()
        nx(g)
        def holder():
            return holder, g
    arm()
    return False
