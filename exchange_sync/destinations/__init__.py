"""Where comments are loaded: the embedded store, or a Re:infer / Communications Mining API."""

from exchange_sync.destinations.base import Destination
from exchange_sync.destinations.reinfer import ReinferAuthError, ReinferDestination, ReinferError
from exchange_sync.destinations.store import StoreDestination

__all__ = ["Destination", "ReinferAuthError", "ReinferDestination", "ReinferError", "StoreDestination"]
