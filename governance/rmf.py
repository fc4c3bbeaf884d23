"""Which NIST AI RMF 1.0 subcategories each pipeline step evidences (mapping from DESIGN.md).

IDs are NIST's; the full catalogue with titles and human-artefact gaps belongs in a data file
(the governance issue). Steps tag their records from here so the mapping lives in one place.
"""
STEP_RMF: dict[str, list[str]] = {
    "prepare": ["MAP 2.3", "MEASURE 2.1"],
    "validate": ["MEASURE 2.1", "MEASURE 2.5"],
    "leakage": ["MEASURE 2.5", "MAP 2.3", "MEASURE 2.13"],
    "data_gate": ["MANAGE 1.1", "MANAGE 1.3", "GOVERN 1.4"],
    "train": ["MEASURE 2.12"],
    "evaluate": ["MEASURE 1.1", "MEASURE 2.3", "MEASURE 2.5", "MEASURE 2.6", "MANAGE 1.1", "MANAGE 1.3"],
    "register": ["GOVERN 1.6", "MAP 2.2", "MEASURE 2.9"],
    "seal": ["MANAGE 4.3", "MEASURE 2.8"],
    "drift": ["MEASURE 2.4", "MANAGE 4.1"],
}

# Risks the foundation pipeline does not measure yet; recorded so an auditor sees the gap (MEASURE 1.1).
NOT_MEASURED_BY_EVALUATE = [
    "fairness by sensitive attribute (MEASURE 2.11)",
    "membership inference (MEASURE 2.10)",
    "adversarial robustness (MEASURE 2.7)",
    "confidence intervals on metrics (MEASURE 2.3)",
]
