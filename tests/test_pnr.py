"""PNR: its distillers keep the public code's defaults, and --compare labels its runs PNR (never CaSSLe,
so never beside CaSSLe's paper number)."""

from cassle.eval.compare import ROW_ORDER, paper_value, strategy_label

SETTING = ("cifar100", "class", 5)


def test_pnr_runs_are_their_own_row_without_cassles_number():
    for distiller in ("pnr_contrastive", "pnr_moco", "pnr_predictive", "pnr_decorrelative", "pnr_predictive_mse"):
        assert strategy_label({"distiller": distiller}) == "PNR"
    assert strategy_label({"distiller": "predictive"}) == "CaSSLe"
    assert "PNR" in ROW_ORDER
    assert paper_value("CaSSLe", "byol", SETTING) == 62.2
    assert paper_value("PNR", "byol", SETTING) is None  # no sourced PNR number (compare.py)


# csm9493/PNR's argparse defaults, written out: distill_lamb, distill_temperature, negative_lamb
PNR_CODE_DEFAULTS = {
    "pnr_contrastive": (1.0, 0.2, None),
    "pnr_moco": (1.0, 0.2, None),
    "pnr_predictive": (1.0, None, 1.0),
    "pnr_decorrelative": (1.0, None, 1.0),
    "pnr_predictive_mse": (25.0, None, 23.0),
}


def test_pnr_distiller_defaults_are_the_public_codes():
    from cassle.distillers import DISTILLERS, PNR_DISTILLER

    assert set(PNR_DISTILLER.values()) == set(PNR_CODE_DEFAULTS)
    for name, (lamb, temperature, negative) in PNR_CODE_DEFAULTS.items():
        cls = DISTILLERS[name]
        assert (cls.default_lamb, cls.default_temperature, cls.default_negative_lamb) == (lamb, temperature, negative)
