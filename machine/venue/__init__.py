"""The subscriber's live Binance Spot account: a signed client, its executor, balances and user data stream."""

from machine.venue._user_stream import DEFAULT_WS_API_URL, UserStream
from machine.venue._venue import LiveVenue, VenueUnavailable

__all__ = ["DEFAULT_WS_API_URL", "LiveVenue", "UserStream", "VenueUnavailable"]
