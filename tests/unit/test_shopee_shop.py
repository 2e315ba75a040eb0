"""The simulated Shopee shop's state (``simulators/shopee_shop.py``): a buyer's order takes stock
from the item or model it names, and an order the shop refuses changes nothing."""

from __future__ import annotations

import pytest

from ordermesh.simulators.shopee_shop import SimulatorRefusal, Store


@pytest.fixture
def store() -> Store:
    shop = Store()
    shop.add_item({"item_name": "Tee", "item_sku": "TEE", "models": [{"model_sku": "TEE-M", "stock": 3}]})
    shop.add_item({"item_name": "Mug", "item_sku": "MUG", "stock": 5, "price": 50000})
    return shop


def test_an_order_takes_stock_from_the_model_or_item_it_names(store: Store) -> None:
    order = store.place_order({"lines": [{"sku": "TEE-M", "quantity": 2}, {"sku": "MUG"}]}, sell_beyond_stock=False)

    assert store.stock() == {"TEE-M": 1, "MUG": 4}
    assert [
        (line["model_sku"] or line["item_sku"], line["model_quantity_purchased"]) for line in order["item_list"]
    ] == [
        ("TEE-M", 2),
        ("MUG", 1),
    ]
    assert order["total_amount"] == 2 * 100000 + 50000
    assert store.orders[order["order_sn"]] is order


@pytest.mark.parametrize(
    ("lines", "status"),
    [
        pytest.param([{"sku": "MUG"}, {"sku": "GHOST"}], 422, id="unknown-sku-after-a-known-one"),
        pytest.param([{"sku": "MUG"}, {"sku": "TEE-M", "quantity": 4}], 409, id="more-than-in-stock"),
    ],
)
def test_a_refused_order_changes_nothing(store: Store, lines: list[dict[str, object]], status: int) -> None:
    with pytest.raises(SimulatorRefusal) as refused:
        store.place_order({"lines": lines}, sell_beyond_stock=False)

    assert refused.value.status == status
    assert store.stock() == {"TEE-M": 3, "MUG": 5}
    assert store.orders == {}


def test_selling_beyond_stock_lets_it_go_negative(store: Store) -> None:
    store.place_order({"lines": [{"sku": "TEE-M", "quantity": 5}]}, sell_beyond_stock=True)

    assert store.stock()["TEE-M"] == -2
