"""Table 1 from hand-made predictions: every row that did not run here says why, never NaN."""

import numpy as np
import pandas as pd

from xmd_core import analysis


def _predictions(runs: dict[tuple[str, str], float], n: int = 40) -> pd.DataFrame:
    rows = []
    for (model, condition), accuracy in runs.items():
        for split in ("analysis", "test"):
            correct = np.arange(n) < round(accuracy * n)
            rows += [{"model": model, "condition": condition, "split": split, "clip": f"c{i}", "correct": bool(c),
                      "error": "" if i else "decoding failed"} for i, c in enumerate(correct)]
    return pd.DataFrame(rows)


def test_table1_says_why_a_row_has_no_number():
    table = analysis.table1(_predictions({("qwen2-audio", "audio"): 0.5, ("videollama3", "silent_video"): 0.75,
                                          ("qwen2.5-omni", "audio"): 0.25}))
    videollama = "VideoLLaMA3 [transformers' class; the paper ran the remote-code 7B]"
    assert table.loc[videollama, "test (this run)"].startswith("75.0 [")
    assert table.loc[videollama, "test (paper)"] == 76.4 and table.loc[videollama, "errors"] == 2
    assert table.loc["Qwen-Audio-Chat", "test (this run)"] == "paper only: needs the model's own remote code"
    assert table.loc["Qwen2-VL-7B-Instruct", "analysis (this run)"] == "not run in this profile"
    assert table.loc["Qwen2.5-Omni (audio)", "test (paper)"] == "not in the paper"
    assert not table.isna().any().any()
    assert not any("distilled" in row for row in table.index)  # those rows are the distillation chapter's


def test_classwise_columns_add_the_other_models_that_ran_to_figure_1s():
    ran = _predictions({("qwen2-audio", "audio"): 0.5, ("qwen2-vl", "silent_video"): 0.5, ("qwen2.5-omni", "sounded_video"): 0.5,
                        ("qwen2.5-omni", "audio"): 0.5, ("videollama3", "silent_video"): 0.5})
    columns = analysis.classwise_columns(ran)
    assert list(columns) == ["audio", "visual", "audio-visual", "VideoLLaMA3 [transformers' class; the paper ran the remote-code 7B]"]


def test_the_unseen_summary_says_what_the_paper_does_not_report():
    from xmd_core import transfer

    overall = {"before": 61.6, "after": 64.4, "gain": 2.8, "gain 95% CI": "[-1.2, +7.2]", "McNemar p": 0.27, "clips": 250}
    table = transfer.unseen_summary(overall)
    assert table.loc["gain 95% CI", "paper"] == "not in the paper" and table.loc["clips", "this run"] == 250
    assert table.loc["gain", "paper"] > 0 and not table.isna().any().any()
