"""Which NIST AI RMF 1.0 subcategories each step's records claim (the catalogue, rmf_catalogue.yaml,
says which steps *can* evidence a subcategory; a test keeps the two consistent).

A step claims only what it measures; what it does not measure it lists under not_measured.
"""
STEP_RMF: dict[str, list[str]] = {
    "prepare": ["MAP 2.3", "MEASURE 2.1"],
    "validate": ["MAP 2.3", "MEASURE 2.1", "MEASURE 2.5"],
    "leakage": ["MAP 2.3", "MEASURE 2.1", "MEASURE 2.5", "MEASURE 2.13"],
    "data_gate": ["MANAGE 1.1", "MANAGE 1.3", "GOVERN 1.4"],
    "train": ["MEASURE 2.12"],
    "evaluate": ["MEASURE 1.1", "MEASURE 2.3", "MEASURE 2.5", "MEASURE 2.6", "MEASURE 2.7", "MEASURE 2.10",
                 "MEASURE 2.11", "MANAGE 1.1", "MANAGE 1.3", "GOVERN 1.4", "MAP 2.2"],
    "register": ["GOVERN 1.6", "MAP 2.2", "MEASURE 2.8", "MEASURE 2.9"],
    "seal": ["MANAGE 4.3", "MEASURE 2.7", "MEASURE 2.8", "GOVERN 4.3"],
    "drift": ["MEASURE 2.4", "MEASURE 3.1", "MANAGE 2.2", "MANAGE 4.1", "GOVERN 4.3"],
    "promote": ["MANAGE 1.1", "MANAGE 2.4", "GOVERN 2.1", "MAP 3.5"],
    "rollback": ["MANAGE 2.3", "MANAGE 2.4", "GOVERN 2.1", "MAP 3.5"],
}
# repair, reconcile and retire records claim no subcategory: they record what went wrong with the records.

# What the evaluation does not measure; recorded so an auditor sees the gap (MEASURE 1.1).
NOT_MEASURED_BY_EVALUATE = [
    "fairness for attributes not listed in dataset.sensitive or evaluation.slices (MEASURE 2.11)",
    "robustness to shifts other than the stated out-of-distribution batch (MEASURE 2.6)",
    "attacks beyond L-inf FGSM/PGD on numeric features, e.g. on categories or the training data (MEASURE 2.7)",
    "privacy attacks stronger than a loss-threshold membership inference (MEASURE 2.10)",
]
