# charged: no_match
# Fills the address space up to ~16 MB below the worker's limit inside a reference cycle, then
# allocates enough containers to push the cycle into the oldest GC generation. Before the fix the
# worker kept it (~555 MB resident) and a later legitimate filter building a 20 MB list failed
# with "memory".
hoard = []
try:
    while True:
        hoard.append([0.0] * 1000000)
except Exception:
    pass
hoard.pop()
hoard.pop()
hoard.append(hoard)
junk = [[i] for i in range(100000)]
junk = None
hoard = None
def check_signal(symbol, ticker, klines):
    return False
