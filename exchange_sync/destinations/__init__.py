"""Where comments are loaded: the embedded store, a Re:infer / Communications Mining source (comments),
or a Re:infer bucket (raw emails, as the hosted integration loads them)."""

from exchange_sync.destinations.base import Destination
from exchange_sync.destinations.reinfer import ReinferAuthError, ReinferDestination, ReinferError, ReinferQuotaError
from exchange_sync.destinations.store import StoreDestination

__all__ = ["Destination", "ReinferAuthError", "ReinferDestination", "ReinferError", "ReinferQuotaError",
           "StoreDestination"]
