# charged: error | crashed
# The deferred finally block overflows the C stack (a million nested map objects): it must
# crash this filter's own batch, never the next trader's. It uses no global and no
# RestrictedPython hook (builtins are closure variables, a while loop instead of for), so it
# still runs after the batch's globals are cleared; the cycle is a closure referring to itself.
def check_signal(symbol, ticker, klines):
    mp, it, nx = map, iter, next
    def trap():
        try:
            yield 1
        finally:
            chain = it([1.0])
            n = 0
            while n < 1000000:
                chain = mp(abs, chain)
                n += 1
            nx(chain)
    g = trap()
    next(g)
    def holder():
        return holder, g
    return False
