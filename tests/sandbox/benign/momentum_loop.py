# A custom momentum computed in a loop over closes, with math.
import math


def check_signal(symbol, ticker, klines):
    closes = get_closes(klines["1m"])
    if len(closes) < 31:
        return False
    score = 0.0
    for i in range(len(closes) - 30, len(closes)):
        change = math.log(closes[i] / closes[i - 1])
        weight = (i - (len(closes) - 30) + 1) / 30
        score += change * weight
    return score > 0
