# expect: rejected | invalid attribute name
# Reach frames through an exception's traceback.
def check_signal(symbol, ticker, klines):
    try:
        1 / 0
    except ZeroDivisionError as exc:
        tb = exc.__traceback__
        return tb.tb_frame.f_back is not None
    return False
