"""exchange-sync: Exchange mailboxes -> cleaned, enriched comments (Re:infer / Communications Mining format)."""

__version__ = "0.1.0"
