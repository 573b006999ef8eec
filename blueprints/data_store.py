"""A blueprint with `data_stores`: handlers reach shared resources as `data_stores.<name>`."""

from avtomatika import StateMachineBlueprint


class PriceBook:
    """A tiny in-process "resource" standing in for a cache or database client."""

    def __init__(self, prices):
        self.prices = dict(prices)

    async def price_of(self, item):
        return self.prices.get(item)


store_blueprint = StateMachineBlueprint(
    "priced_order",
    api_version="v1",
    api_endpoint="jobs/priced_order",
    data_stores={"prices": PriceBook({"apple": 3, "pear": 5})},
)


@store_blueprint.handler_for("start", is_start=True)
async def look_up(initial_data, data_stores, state_history, actions):
    unit = await data_stores.prices.price_of(initial_data["item"])
    state_history["total"] = unit * initial_data.get("quantity", 1)
    actions.transition_to("done")


@store_blueprint.handler_for("done", is_end=True)
def done(total, state_history):
    state_history["receipt"] = f"total={total}"
