"""Raw RFC 822 bytes + Exchange metadata -> Re:infer comments (see docs/transform.md).

Pure, Prefect-free: ``email_to_comment`` for one email, ``transform_table`` / ``transform_frame``
for a staged batch (Arrow table / pandas DataFrame).
"""

from .batch import transform_frame, transform_table
from .build import email_to_comment
from .meta import ExchangeMeta, Rejection

__all__ = ["ExchangeMeta", "Rejection", "email_to_comment", "transform_frame", "transform_table"]
