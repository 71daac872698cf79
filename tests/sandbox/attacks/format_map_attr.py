# expect: error | str.format_map() is not available
# GHSA for format_map (RestrictedPython PR #258): same walk through format_map.
def check_signal(symbol, ticker, klines):
    return "x" in "{k.__class__}".format_map({"k": klines})
