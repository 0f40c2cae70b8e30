"""PNR runs are labelled PNR in --compare (never CaSSLe, so never beside CaSSLe's paper number)."""
from cassle.eval.compare import ROW_ORDER, paper_value, strategy_label

SETTING = ("cifar100", "class", 5)


def test_pnr_runs_are_their_own_row_without_cassles_number():
    for distiller in ("pnr_contrastive", "pnr_moco", "pnr_predictive", "pnr_decorrelative",
                      "pnr_predictive_mse"):
        assert strategy_label({"distiller": distiller}) == "PNR"
    assert strategy_label({"distiller": "predictive"}) == "CaSSLe"
    assert "PNR" in ROW_ORDER
    assert paper_value("CaSSLe", "byol", SETTING) == 62.2
    assert paper_value("PNR", "byol", SETTING) is None  # no sourced PNR number (compare.py)
