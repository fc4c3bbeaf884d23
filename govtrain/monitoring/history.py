"""Drift history of a model, read from its chain (every `govtrain drift --model` run is a record)."""
from __future__ import annotations

from pathlib import Path

from govtrain.core.config import Config
from govtrain.governance import chain


def drift_history(config: Config, model: str) -> list[dict]:
    rows = []
    for record in chain.read_chain(config.chain_dir, model):
        if record["step"] != "drift":
            continue
        check = record["checks"][0]
        rows.append({"at": record["finished"], "version": record["version"], "share": check["value"],
                     "threshold": check["threshold"], "drifted": not check["passed"],
                     "columns": record["details"].get("drifted_columns", []), "hash": record["hash"]})
    return rows


def plot_history(rows: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(range(len(rows)), [r["share"] for r in rows], marker="o", label="share of columns drifted")
    ax.plot(range(len(rows)), [r["threshold"] for r in rows], linestyle=":", color="grey",
            label="dataset drift threshold")
    ax.set_xticks(range(len(rows)), [f"{r['at'][5:16]}\nv{r['version']}" for r in rows], fontsize=7)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left")
    ax.set_title("Drift history")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
