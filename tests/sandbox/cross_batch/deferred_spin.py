# charged: timeout
# A suspended generator with a finally block, left in a garbage cycle (a closure that refers to
# itself): its finally runs at the next collection. Before the fix that came in whichever batch
# triggered it; the busy loop then timed out the next trader's batch while this filter stayed "ok".
def check_signal(symbol, ticker, klines):
    def trap():
        try:
            yield 1
        finally:
            n = 0
            while True:
                n = n + 1
    g = trap()
    next(g)
    def holder():
        return holder, g
    return False
