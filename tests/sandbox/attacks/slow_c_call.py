# expect: timeout
# A long computation inside one C call is still killed on time.
import math
def check_signal(symbol, ticker, klines):
    return math.factorial(10 ** 8) > 0
