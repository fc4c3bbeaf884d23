"""The paragraph a reviewer reads first, from the sealed ledger alone: what was gated and whether it passed, who
is better on this split (the network or a simple model, by how much, with the paired interval), what was not
measured, whether identities were authenticated, and when. The run summary, the model card and the audit
report all open with it, so they cannot tell three stories."""
from __future__ import annotations

from typing import Any

from govtrain.governance.evidence import blocks
from govtrain.governance.rmf import standing

STEP_WORDS = {"data_gate": "the data", "evaluate": "the model"}


def short_name(model: str) -> str:
    return model.removeprefix("sklearn ").split(" (")[0]


def comparison_words(row: dict[str, Any]) -> str:
    """One simple model against the network, the right way round: gap > 0 means the simple model does better
    (evaluation/baseline.py). RMSE's gap is the network's RMSE over the simple model's, less 1."""
    name, metric, gap = short_name(row["model"]), row["metric"], row["gap"]
    amount = f"{abs(gap):.1%} {metric}" if metric == "rmse" else f"{abs(gap):.4f} {metric}"
    interval = row.get("gap_interval")
    said = ""
    if interval:
        low, high = interval
        said = (f", 95% interval of the difference {low:+.1%} to {high:+.1%}" if metric == "rmse" else
                f", 95% interval of the difference {low:+.4f} to {high:+.4f}")
        if low <= 0 <= high:
            ahead = name if gap > 0 else "the network"
            return f"the network and {name} are level on this split ({ahead} ahead by {amount}{said})"
    bracketed = f" ({said.removeprefix(', ')})" if said else ""
    if gap > 0:
        return f"{name} does better than the network by {amount}{bracketed}"
    return f"the network does better than {name} by {amount}{bracketed}"


def _gaps(records: list[dict[str, Any]]) -> list[str]:
    """The subcategory gaps the records name (governance/rmf.py): "MEASURE 2.11: no sensitive attribute..."."""
    found = []
    for record in records:
        found += [n for n in record.get("not_measured", []) if n.split(":")[0].split(" ")[0] in
                  ("GOVERN", "MAP", "MEASURE", "MANAGE")]
        found += [f"{sid}: {why}" for sid, why in standing(record)[1].items()]
    return sorted(set(found))


def paragraph(ledger: dict[str, Any], verified: bool | None = None, registered: str | None = None) -> str:
    """Plain sentences, no tables. `verified`: the audit's answer, when the caller checked the ledger;
    `registered`: "credit version 3", when known."""
    by_step = {r["step"]: r for r in ledger["records"]}
    gated = [c for step in ("data_gate", "evaluate") for c in by_step.get(step, {}).get("checks", [])
             if c.get("gated", True)]
    failed = [c for c in gated if blocks(c)]
    parts = []
    outcome = ledger.get("outcome", "")
    if outcome == "registered":
        parts.append(f"Registered{' as ' + registered if registered else ''}, awaiting a person's approval "
                     f"(alias challenger until promoted).")
    else:
        parts.append(f"Not registered: {outcome}.")
    where = " and ".join(STEP_WORDS[s] for s in ("data_gate", "evaluate") if by_step.get(s, {}).get("checks"))
    if failed:
        parts.append(f"{len(failed)} of {len(gated)} gated checks on {where} failed: "
                     f"{', '.join(c['id'] for c in failed[:5])}{' …' if len(failed) > 5 else ''}.")
    elif gated:
        parts.append(f"All {len(gated)} gated checks on {where} passed.")
    else:
        parts.append("No gate was reached.")
    evaluate = by_step.get("evaluate", {})
    rows = evaluate.get("details", {}).get("baselines", [])
    if rows:
        best = max(rows, key=lambda r: r["gap"])
        parts.append(f"On the test split ({evaluate.get('metrics', {}).get('test_rows')} rows), "
                     f"{comparison_words(best)}.")
    gaps = _gaps(ledger["records"])
    if gaps:
        parts.append("Not measured: " + "; ".join(gaps) + ".")
    register = by_step.get("register")
    if register:
        who = register["details"].get("registered_by") or {}
        parts.append(f"Registered by {who.get('user', register['actor'])}, "
                     + ("authenticated (" + str(who.get("by")) + ")." if who.get("authenticated")
                        else "identity not authenticated (no MLflow login)."))
    parts.append(f"Sealed {ledger.get('sealed', 'at an unknown time')}"
                 + ("" if verified is None else "; the ledger verifies." if verified else "; the ledger DOES NOT "
                    "verify.") + ("" if verified is not None else "."))
    return " ".join(parts)
