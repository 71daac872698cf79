# expect: rejected | starts with "_"
# GHSA-ffg3-p8fm-mjx2 / CVE-2026-55830: a positional-only parameter shadows the _getattr_ hook.
def check_signal(symbol, ticker, klines, _getattr_=lambda o, n: 1, /):
    return klines.anything == 1
