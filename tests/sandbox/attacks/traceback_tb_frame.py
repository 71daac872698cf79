# expect: rejected | restricted name
# The same without a dunder name: tb_frame/f_globals are inspect attributes.
def check_signal(symbol, ticker, klines):
    return klines.tb_frame.f_globals is None
