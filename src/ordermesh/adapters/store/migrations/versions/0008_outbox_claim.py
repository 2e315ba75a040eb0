"""Outbox claim indexes that do not grow with the delivered history

The dispatcher's claim reads the pending messages in id order and skips any whose aggregate has an
earlier message not yet delivered. Before this, the id order came from the primary key, which
walks every delivered message first, and the "earlier message" probe walked every delivered
message of the same aggregate (a hot SKU's level has thousands): the claim cost grew with the
outbox's history, 15.7 ms per page of 500 in a 6,000-order steady run and 8.3 ms on a table of
78,000 rows with 7,500 pending. Both indexes are now partial: ``ix_outbox_due`` holds only the
pending rows in id order, ``ix_outbox_aggregate`` only the rows not yet delivered. Same table:
3.0 ms. (Nothing read ``ix_outbox_pending``'s ``next_attempt_at`` order.)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 13:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

PENDING = sa.text("status = 'pending'")
OPEN = sa.text("status <> 'delivered'")


def upgrade() -> None:
    op.drop_index("ix_outbox_pending", table_name="outbox")
    op.create_index("ix_outbox_due", "outbox", ["id"], postgresql_where=PENDING, sqlite_where=PENDING)
    op.drop_index("ix_outbox_aggregate", table_name="outbox")
    op.create_index(
        "ix_outbox_aggregate",
        "outbox",
        ["aggregate_type", "aggregate_id", "id"],
        postgresql_where=OPEN,
        sqlite_where=OPEN,
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_aggregate", table_name="outbox")
    op.create_index("ix_outbox_aggregate", "outbox", ["aggregate_type", "aggregate_id", "id"])
    op.drop_index("ix_outbox_due", table_name="outbox")
    op.create_index(
        "ix_outbox_pending", "outbox", ["next_attempt_at", "id"], postgresql_where=PENDING, sqlite_where=PENDING
    )
