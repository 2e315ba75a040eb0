"""Inbox claim index that does not grow with the processed history

The worker claims due webhook deliveries in id order. ``ix_inbox_pending`` held the pending rows in
``next_attempt_at`` order, which is not the claim's order, so PostgreSQL either read every pending
row and sorted them or walked the primary key through every delivery ever processed first: 20-25
ms a claim of 200 with 20,000 pending and 100,000 processed deliveries (EXPLAIN ANALYZE), growing
with the inbox's history, in the middle of a flash sale's webhook storm. ``ix_inbox_due`` holds only
the pending rows, in id order, as ``ix_outbox_due`` does for the outbox (0008). Nothing else read
``ix_inbox_pending``.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 19:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    op.drop_index("ix_inbox_pending", table_name="inbox")
    op.create_index("ix_inbox_due", "inbox", ["id"], postgresql_where=PENDING, sqlite_where=PENDING)


def downgrade() -> None:
    op.drop_index("ix_inbox_due", table_name="inbox")
    op.create_index(
        "ix_inbox_pending", "inbox", ["next_attempt_at", "id"], postgresql_where=PENDING, sqlite_where=PENDING
    )
