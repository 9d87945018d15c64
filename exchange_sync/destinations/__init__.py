"""Where comments are loaded: the embedded store, a Re:infer / Communications Mining source (comments),
or a Re:infer bucket (raw emails, as the hosted integration loads them).

``base.Destination`` is the contract, ``registry`` picks the implementation by ``destination.kind``;
a kind's module is imported on first use.
"""

from exchange_sync.destinations.base import Destination
from exchange_sync.destinations.registry import checkpoints_url, open_destination

__all__ = ["Destination", "checkpoints_url", "open_destination"]
