# expect: rejected | restricted name
# GHSA-wqc8-x2pr-7jqh / CVE-2023-37271: walk a generator's frame to the caller's globals.
def check_signal(symbol, ticker, klines):
    gen = (x for x in [1])
    frame = gen.gi_frame.f_back.f_back
    return "os" in frame.f_globals
