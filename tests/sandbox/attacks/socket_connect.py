# expect: rejected | import of "socket" is not allowed
import socket
def check_signal(symbol, ticker, klines):
    socket.create_connection(("127.0.0.1", 5432), timeout=1)
    return True
