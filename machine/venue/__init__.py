"""The subscriber's live Binance Spot account: a signed client, its executor and balances."""

from machine.venue._venue import LiveVenue, VenueUnavailable

__all__ = ["LiveVenue", "VenueUnavailable"]
