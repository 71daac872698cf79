# expect: crashed
# A C-level recursion CPython does not guard (a million nested map objects) segfaults the
# interpreter: the worker dies, the batch is "crashed", and a fresh worker takes over.
def check_signal(symbol, ticker, klines):
    chain = iter([1.0])
    for _ in range(1000000):
        chain = map(abs, chain)
    return next(chain) > 0
