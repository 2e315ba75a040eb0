"""Search: the best plan among the candidates.

1. Each candidate gets a *bound*: the least score any plan shipping from it alone could have (its
   node terms, its cheapest parcel, its fastest delivery). Candidates are ranked by it.
2. Single-node plans: candidates that cover the whole order are scored in rank order until the
   next bound cannot beat the best score found.
3. When the profile and channel allow splitting, plans of 2 .. ``max_shipments`` nodes are searched
   among the ``search_breadth`` best-ranked candidates (plus, for any SKU they lack, the best-ranked
   nodes that hold it). A combination is skipped when some SKU is at none of its nodes, or when its
   bound cannot beat the best plan so far: the split penalty, each node's cheapest first 500 g, the
   extra 500 g steps the order's weight must pay across that many parcels, the best node terms, and
   the slowest of the nodes' fastest deliveries. Lines are filled bundles first, best-ranked node
   first; a combination whose fill leaves a node empty is the plan of a smaller one and is skipped.
4. No complete plan in that pool: a greedy pass over every candidate (the node that ships the most of
   what is left, in rank order) up to the shipment limit; what it cannot place makes the plan partial.
A complete plan always beats a partial one; among complete plans the lowest score wins, then fewer
shipments, then node codes (deterministic). Within the pool the search is exact for the plans the
fill can build; beyond it, it is a heuristic (nodes ranked low on their own rarely win a split).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from itertools import combinations
from typing import Any

from ordermesh.domain.routing.constraints import fill
from ordermesh.domain.routing.planner import Planner, PlanOption, Taken
from ordermesh.domain.routing.scoring import CriterionScores


@dataclass(frozen=True, slots=True)
class ConsideredPlan:
    node_codes: tuple[str, ...]
    scores: CriterionScores
    complete: bool

    def to_dict(self) -> dict[str, Any]:
        return {"nodes": list(self.node_codes), "complete": self.complete, "scores": self.scores.to_dict()}


@dataclass(frozen=True, slots=True)
class SearchResult:
    best: PlanOption | None
    ranked: tuple[int, ...]  # candidate indexes, best bound first
    considered: tuple[ConsideredPlan, ...]  # best first


def search_plans(planner: Planner, *, max_shipments: int) -> SearchResult:
    candidates = planner.candidates
    ranked = sorted(range(len(candidates)), key=lambda i: (planner.bound[i], candidates[i].node.code))
    considered: list[ConsideredPlan] = []
    best: PlanOption | None = None
    for i in ranked:
        if not candidates[i].covers_order:
            continue
        if best is not None and planner.bound[i] >= best.scores.total:
            break  # ranked by bound: no later single node can win
        best = _keep(planner.evaluate([i], [planner.alone(i)]), best, considered)
    if max_shipments > 1 and len(ranked) > 1:
        best = _search_splits(planner, ranked, best, max_shipments, considered)
    if best is None:
        best = _keep(_greedy(planner, ranked, max_shipments), None, considered)
        if best is not None and not best.complete and not planner.profile.split.allow_partial:
            best = None
    considered.sort(key=lambda p: (not p.complete, p.scores.total, len(p.node_codes), p.node_codes))
    return SearchResult(best, tuple(ranked), tuple(considered))


def _keep(plan: PlanOption | None, best: PlanOption | None, considered: list[ConsideredPlan]) -> PlanOption | None:
    if plan is None:
        return best
    considered.append(ConsideredPlan(plan.codes, plan.scores, plan.complete))
    if best is None or plan.complete != best.complete:
        return plan if best is None or plan.complete else best
    mine = (plan.scores.total, len(plan.parts), plan.codes)
    return plan if mine < (best.scores.total, len(best.parts), best.codes) else best


def _pool(planner: Planner, ranked: list[int]) -> list[int]:
    """The best-ranked candidates, plus the best-ranked holders of any SKU they do not cover."""
    breadth = planner.profile.search_breadth
    pool = ranked[:breadth]
    for sku, need in planner.needs.items():
        held = sum(planner.candidates[i].available.get(sku, 0) for i in pool)
        for i in ranked[breadth:]:
            if held >= need:
                break
            units = planner.candidates[i].available.get(sku, 0)
            if units and i not in pool:
                pool.append(i)
                held += units
    return pool


def _search_splits(
    planner: Planner, ranked: list[int], best: PlanOption | None, max_shipments: int, considered: list[ConsideredPlan]
) -> PlanOption | None:
    pool = _pool(planner, ranked)
    candidates, needs = planner.candidates, list(planner.needs.items())
    stocks = [candidate.available for candidate in candidates]
    bit = {sku: 1 << position for position, sku in enumerate(planner.needs)}
    everything = (1 << len(bit)) - 1
    # Per pool node: (index, the order's SKUs it holds as a bit mask, its bound's parts); see
    # Planner.least_cost / least_extra / base / least_lead.
    records = [
        (
            i,
            sum(bit[sku] for sku in candidates[i].available),
            planner.least_cost[i],
            planner.least_extra[i],
            planner.base[i],
            planner.least_lead[i],
        )
        for i in pool
    ]
    penalty = planner.profile.split.penalty
    floor = min(r[4] for r in records) + min(r[5] for r in records)
    cheapest = sorted(r[2] for r in records)
    least_extra = min(r[3] for r in records)
    for size in range(2, min(max_shipments, len(pool)) + 1):
        steps = planner.extra_steps_at_least(size)
        split = penalty * (size - 1)
        if best is not None and split + sum(cheapest[:size]) + least_extra * steps + floor >= best.scores.total:
            break  # no plan of this size, or larger, can win
        for combo in combinations(records, size):
            mask, cost, extra, base, lead = 0, split, math.inf, math.inf, 0.0
            for _, held, node_cost, node_extra, node_base, node_lead in combo:
                mask |= held
                cost += node_cost
                if node_extra < extra:
                    extra = node_extra
                if node_base < base:
                    base = node_base
                if node_lead > lead:
                    lead = node_lead
            if mask != everything:
                continue  # some SKU is at none of these nodes
            if best is not None and cost + extra * steps + base + lead >= best.scores.total:
                continue  # cannot beat the best plan so far
            indexes = tuple(record[0] for record in combo)
            if not _holds(stocks, indexes, needs):
                continue
            takens, placed = fill(planner.lines, [stocks[i] for i in indexes])
            if placed < planner.total_units or not all(takens):
                continue  # incomplete, or the same plan as a smaller combination
            best = _keep(planner.evaluate(indexes, [tuple(taken) for taken in takens]), best, considered)
    return best


def _holds(stocks: list[Mapping[int, int]], combo: tuple[int, ...], needs: list[tuple[int, int]]) -> bool:
    """Whether the nodes together hold every unit of every SKU the order needs."""
    for sku, need in needs:
        held = 0
        for i in combo:
            held += stocks[i].get(sku, 0)
        if held < need:
            return False
    return True


def _greedy(planner: Planner, ranked: list[int], max_shipments: int) -> PlanOption | None:
    """Node by node, the one that ships the most of what is left (rank breaks ties)."""
    remaining = list(planner.lines)
    chosen: list[int] = []
    takens: list[Taken] = []
    for _ in range(max_shipments):
        best_index, best_units = -1, 0
        best_taken: Taken = ()
        for i in ranked:
            if i in chosen:
                continue
            taken, units = fill(remaining, [planner.candidates[i].available])
            if units > best_units:
                best_index, best_taken, best_units = i, tuple(taken[0]), units
        if best_units == 0:
            break
        chosen.append(best_index)
        takens.append(best_taken)
        shipped = {line.line_id: count for line, count in best_taken}
        remaining = [replace(line, quantity=line.quantity - shipped.get(line.line_id, 0)) for line in remaining]
        if not any(line.quantity for line in remaining):
            break
    return planner.evaluate(chosen, takens) if chosen else None
