"""The human study: design balance, the trials schema, the test widget, the simulated panel and
the statistics (a planted condition effect must come back out of the regression)."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from xmd_core.humans import analysis as ha
from xmd_core.humans import design as hd
from xmd_core.humans import panel, schema
from xmd_core.humans.widget import ExportedMedia, ListeningTest
from xmd_core.mcq import LETTERS, PROMPT_HEAD, build_questions

# --------------------------------------------------------------------------------------------
# helpers


def make_clips(n_classes: int, per_class: int, n_options: int = 10, seed: int = 0) -> pd.DataFrame:
    """A clip table joined to real questions (mcq.build_questions) over made-up classes."""
    labels = [f"class {i:02d}" for i in range(max(n_classes, n_options))]
    clips = pd.DataFrame(
        {"clip": [f"clip{c:02d}_{k:03d}" for c in range(n_classes) for k in range(per_class)],
         "label": [labels[c] for c in range(n_classes) for _ in range(per_class)]}
    )
    questions = build_questions(clips, {lab: 100 + i for i, lab in enumerate(labels)}, seed, n_options)
    return clips.merge(questions.drop(columns=["label"]), on="clip").assign(path=lambda d: "/nonexistent/" + d["clip"] + ".mp4")


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeMedia:
    """Writes stand-in files for the three inputs and counts the calls."""

    def __init__(self, root):
        self.root = root
        self.calls = []

    def __call__(self, clip, path):
        self.calls.append(clip)
        out = self.root / clip
        out.mkdir(parents=True, exist_ok=True)
        files = {}
        for condition, name in ExportedMedia.FILES.items():
            files[condition] = out / name
            files[condition].write_bytes(f"{condition}:{clip}".encode())
        return files


def planted_panel(effects: dict[str, float], n_clips=1200, participants=60, seed=1) -> pd.DataFrame:
    """Trials from a pure logistic mixed model: every clip audible and visible, no lapses, no
    guessing, so P(correct) = sigmoid(base[condition] + ability + ease)."""
    clips = make_clips(20, n_clips // 20)
    design = hd.build_design(clips, participants, seed=seed)
    info = clips[["clip"]].assign(audible=True, visible=True)
    params = panel.PanelParams(
        logit_audio=effects["audio"], logit_silent_video=effects["silent_video"], logit_sounded_video=effects["sounded_video"],
        ability_sd=0.5, clip_sd=0.6, lapse_mean=0.0, skip_rate=0.0, guess_when_unsure=False, venue_context=0.0,
    )
    return panel.simulate_panel(design, info, params, seed=seed)


# --------------------------------------------------------------------------------------------
# design


def test_the_papers_design_balances():
    size = hd.check_design()
    assert (size.trials, size.trials_per_participant, size.per_condition) == (4500, 45, 15)
    clips = make_clips(30, 50)
    design = hd.build_design(clips, 100, seed=3)
    hd.validate_design(design)
    assert len(design) == 4500
    assert design.groupby("participant").size().eq(45).all()
    assert design.groupby(["participant", "condition"]).size().eq(15).all()
    assert not design.duplicated(["participant", "clip"]).any()
    assert not design.duplicated(["clip", "condition"]).any()
    assert set(map(tuple, design[["clip", "condition"]].to_numpy())) == {(c, k) for c in clips["clip"] for k in hd.CONDITIONS}
    # each participant meets many classes (the clip order cycles through them)
    assert design.groupby("participant")["label"].nunique().min() >= 20
    # options and answers come from the question table unchanged
    merged = design.merge(clips[["clip", "options", "answer"]], on="clip", suffixes=("", "_q"))
    assert (merged["answer"] == merged["answer_q"]).all() and all(a == b for a, b in zip(merged["options"], merged["options_q"]))
    # trial order: seeded, and shuffled differently per participant
    again = hd.build_design(clips, 100, seed=3)
    pd.testing.assert_frame_equal(design, again)
    first = design[design["trial"] == 1]
    assert first["condition"].nunique() == 3
    other = hd.build_design(clips, 100, seed=4)
    assert not (other["clip"].to_numpy() == design["clip"].to_numpy()).all()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((30, 50, 7), ["4,500 trials cannot be split evenly among 7 participants", "3, 4, 5, 6, 10"]),
        ((30, 50, 9), ["each participant would get 500 trials", "not divisible by the 3 conditions"]),
        ((30, 50, 2), ["meet a clip twice", "needs 3 different participants"]),
        ((1, 1, 3), ["each participant would get 1 trials", "no panel size balances 1 clips"]),
    ],
)
def test_impossible_designs_say_what_is_wrong(args, expected):
    with pytest.raises(hd.DesignError) as info:
        hd.check_design(*args)
    for text in expected:
        assert text in str(info.value)


def test_build_design_refuses_unequal_classes_and_bad_panels():
    clips = make_clips(4, 6)
    with pytest.raises(hd.DesignError, match="same number of clips"):
        hd.build_design(clips.iloc[1:], 3)
    with pytest.raises(hd.DesignError, match="cannot be split evenly among 5 participants"):
        hd.build_design(clips, 5)
    assert hd.choose_participants(1500) == 100
    assert hd.choose_participants(24) == 3
    assert hd.valid_participant_counts(24) == [3, 4, 6, 8, 12, 24]


def test_validate_design_catches_broken_tables():
    design = hd.build_design(make_clips(4, 6), 4, seed=0)
    hd.validate_design(design)
    twice = design.copy()
    p1 = twice[twice["participant"] == "P001"]
    # give P001 one of its own clips again in place of another trial
    twice.loc[p1.index[1], ["clip", "condition"]] = [p1["clip"].iloc[0], p1["condition"].iloc[1]]
    with pytest.raises(hd.DesignError):
        hd.validate_design(twice)
    with pytest.raises(hd.DesignError, match="never answered"):
        hd.validate_design(design.iloc[1:])
    swapped = design.copy()
    # move one trial from P001 to P003: the counts become unequal
    swapped.loc[design.index[design["participant"] == "P001"][0], "participant"] = "P003"
    with pytest.raises(hd.DesignError):
        hd.validate_design(swapped)


def test_select_clips_takes_equal_clips_per_class():
    clips = make_clips(3, 5)
    short = clips.drop(clips.index[clips["label"] == "class 01"][:2])
    chosen = hd.select_clips(short, ["class 00", "class 01", "class 02"])
    assert chosen.groupby("label").size().eq(3).all()
    with pytest.raises(hd.DesignError, match=r"class 01 \(3\)"):
        hd.select_clips(short, ["class 00", "class 01"], clips_per_class=4)
    with pytest.raises(hd.DesignError, match="without clips"):
        hd.select_clips(short, ["class 00", "nope"])


# --------------------------------------------------------------------------------------------
# schema


def small_trials() -> pd.DataFrame:
    design = hd.build_design(make_clips(2, 3), 3, seed=0)
    trials = design.drop(columns="path").assign(response=None, correct=False, rt_s=1.5, source="human")
    trials.loc[0, ["response", "correct"]] = [trials.loc[0, "answer"], True]
    wrong = LETTERS[(LETTERS.index(trials.loc[1, "answer"]) + 1) % 10]
    trials.loc[1, ["response", "correct"]] = [wrong, False]
    return trials


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_trials_round_trip(tmp_path, suffix):
    trials = schema.validate_trials(small_trials())
    path = schema.write_trials(trials, tmp_path / f"t{suffix}")
    back = schema.read_trials(path)
    assert list(back.columns) == schema.TRIAL_COLUMNS
    assert back["response"].iloc[2] is None and back["response"].iloc[0] == trials["response"].iloc[0]
    pd.testing.assert_frame_equal(back, trials.sort_values(["participant", "trial"]).reset_index(drop=True))
    assert not list(tmp_path.glob(".*.tmp"))  # nothing half-written left behind


def test_trials_errors_name_column_and_row(tmp_path):
    trials = small_trials()
    bad = trials.copy()
    bad.loc[2, "condition"] = "video"
    with pytest.raises(schema.TrialsError, match=r"row 3 .*'condition'.*'video'"):
        schema.validate_trials(bad)
    with pytest.raises(schema.TrialsError, match=r"missing column\(s\) \['rt_s'\]"):
        schema.validate_trials(trials.drop(columns="rt_s"))
    lying = trials.copy()
    lying.loc[1, "correct"] = True
    with pytest.raises(schema.TrialsError, match="row 2 .*'correct' is True"):
        schema.validate_trials(lying)
    twice = pd.concat([trials, trials.iloc[[0]].assign(trial=99)], ignore_index=True)
    with pytest.raises(schema.TrialsError, match="meets clip"):
        schema.validate_trials(twice)
    path = schema.write_trials(trials, tmp_path / "t.csv")
    text = path.read_text().splitlines()
    text[1] = text[1].replace("human", "robot")
    path.write_text("\n".join(text))
    with pytest.raises(schema.TrialsError, match=r"t\.csv, row 1 .*'source'"):
        schema.read_trials(path)


# --------------------------------------------------------------------------------------------
# the test widget


def visible_letters(test: ListeningTest) -> list[str]:
    return [b.description for b in test.option_buttons if b.layout.display != "none"]


def test_widget_flow_saves_every_trial_and_resumes(tmp_path):
    design = hd.build_design(make_clips(2, 3), 3, seed=0)  # 6 trials each, 2 per condition
    plan = design[design["participant"] == "P002"].sort_values("trial").reset_index(drop=True)
    path = tmp_path / "trials" / "P002.parquet"
    media, clock = FakeMedia(tmp_path / "media"), FakeClock()

    test = ListeningTest(design, "P002", path, media, clock=clock)
    assert test.current_trial is None and test.start_button.description == "Start"
    with pytest.raises(RuntimeError, match="press Start"):
        test.respond("A")
    test.start_button.click()
    assert test.current_trial == 1
    row = plan.iloc[0]
    # the same prompt and options as the models
    assert PROMPT_HEAD in test.prompt.value
    assert visible_letters(test) == [f"{LETTERS[i]}. {o}" for i, o in enumerate(row["options"])]
    player = test.media_box.children[0]
    assert player.value == f"{row['condition']}:{row['clip']}".encode()
    assert type(player).__name__ == ("Audio" if row["condition"] == "audio" else "Video")

    clock.now += 2.5
    test.option_buttons[LETTERS.index(row["answer"])].click()  # right
    saved = schema.read_trials(path)
    assert len(saved) == 1 and saved["correct"].iloc[0] and saved["rt_s"].iloc[0] == pytest.approx(2.5)
    assert saved["source"].iloc[0] == "human"
    wrong = LETTERS[(LETTERS.index(plan["answer"].iloc[1]) + 1) % 10]
    clock.now += 4.0
    test.option_buttons[LETTERS.index(wrong)].click()  # wrong
    clock.now += 1.0
    test.skip_button.click()  # skipped
    saved = schema.read_trials(path)
    assert list(saved["trial"]) == [1, 2, 3]
    assert list(saved["correct"]) == [True, False, False] and saved["response"].iloc[2] is None
    assert list(saved["rt_s"]) == pytest.approx([2.5, 4.0, 1.0])
    assert test.current_trial == 4  # the fourth is on screen, unanswered: closing now loses nothing else

    # the participant leaves and comes back
    again = ListeningTest(design, "P002", path, media, clock=clock)
    assert again.start_button.description == "Continue" and "trial 4 of 6" in again.instruction.value
    again.start_button.click()
    assert again.current_trial == 4
    for _ in range(3):
        clock.now += 3.0
        again.option_buttons[LETTERS.index(plan.set_index("trial").loc[again.current_trial, "answer"])].click()
    assert again.finished and again.current_trial is None and "done" in again.instruction.value
    saved = schema.read_trials(path)
    assert list(saved["trial"]) == list(range(1, 7))
    assert saved[["clip", "condition"]].equals(plan[["clip", "condition"]])
    assert list(saved["correct"]) == [True, False, False, True, True, True]
    # a finished participant stays finished
    assert ListeningTest(design, "P002", path, media, clock=clock).finished


def test_widget_refuses_a_file_from_another_design(tmp_path):
    design = hd.build_design(make_clips(2, 3), 3, seed=0)
    path = tmp_path / "P001.csv"
    media, clock = FakeMedia(tmp_path / "media"), FakeClock()
    test = ListeningTest(design, "P001", path, media, clock=clock)
    test.start()
    test.skip_button.click()
    other = hd.build_design(make_clips(2, 3), 3, seed=5)
    with pytest.raises(schema.TrialsError, match="design now plans"):
        ListeningTest(other, "P001", path, media, clock=clock)
    with pytest.raises(KeyError, match="not in the design"):
        ListeningTest(design, "P009", None, media, clock=clock)


def test_widget_plays_the_exported_inputs(tmp_path, real_clip):
    media = ExportedMedia(tmp_path / "media")
    files = media("real", str(real_clip))
    assert {k: v.name for k, v in files.items()} == ExportedMedia.FILES
    stamp = files["audio"].stat().st_mtime_ns
    assert media("real", str(real_clip))["audio"].stat().st_mtime_ns == stamp  # exported once
    clips = make_clips(1, 3).assign(path=str(real_clip))
    design = hd.build_design(clips, 3, seed=0)
    test = ListeningTest(design, "P001", None, media, clock=FakeClock())
    test.start()
    row = design[design["participant"] == "P001"].sort_values("trial").iloc[0]
    assert test.media_box.children[0].value == files[row["condition"]].read_bytes()
    assert files["audio"].read_bytes()[:4] == b"RIFF" and files["sounded_video"].read_bytes()[4:8] == b"ftyp"
    assert "not saved" in test.status.value


# --------------------------------------------------------------------------------------------
# simulated panel


def test_panel_follows_the_cues_and_is_labelled_simulated():
    clips = make_clips(10, 30)
    design = hd.build_design(clips, 30, seed=0)
    rng = np.random.default_rng(0)
    info = clips[["clip"]].assign(audible=rng.random(len(clips)) < 0.5, visible=rng.random(len(clips)) < 0.5)
    params = panel.PanelParams(venue_context=0.0, skip_rate=0.0)
    trials = panel.simulate_panel(design, info, params, seed=2)
    assert (trials["source"] == "simulated").all()
    pd.testing.assert_frame_equal(trials, panel.simulate_panel(design, info, params, seed=2))
    t = trials.merge(info, on="clip")
    ears_no_cue = t[(t.condition == "audio") & ~t.audible]["correct"].mean()
    eyes_no_cue = t[(t.condition == "silent_video") & ~t.visible]["correct"].mean()
    ears_cue = t[(t.condition == "audio") & t.audible]["correct"].mean()
    both_one_cue = t[(t.condition == "sounded_video") & (t.audible ^ t.visible)]["correct"].mean()
    assert ears_no_cue < 0.2 and eyes_no_cue < 0.2  # chance is 0.1
    assert ears_cue > 0.6 and both_one_cue > 0.6
    assert ha.who(trials) == "simulated humans"
    with pytest.raises(ValueError, match="venue weights"):
        panel.simulate_panel(design, info, panel.PanelParams(), seed=0)


# --------------------------------------------------------------------------------------------
# statistics


def test_regression_recovers_a_planted_condition_effect():
    trials = planted_panel({"audio": 0.3, "silent_video": 1.1, "sounded_video": -0.2})
    model = ha.mixed_model(trials, reference="audio", seed=0)
    assert model.n_trials == 3600 and model.n_participants == 60 and model.n_clips == 1200
    assert model.effect("silent_video") == pytest.approx(0.8, abs=0.3)
    assert model.effect("sounded_video") == pytest.approx(-0.5, abs=0.3)
    low, high = model.fixed.loc["condition: silent_video", ["low", "high"]]
    assert 0 < low < high
    assert list(model.variance.index) == ["participant", "clip"] and (model.variance["sd"] > 0).all()
    # the same trials with the conditions' labels swapped give the opposite effect
    swapped = trials.assign(condition=trials["condition"].map({"audio": "silent_video", "silent_video": "audio", "sounded_video": "sounded_video"}))
    assert ha.mixed_model(swapped, seed=0).effect("silent_video") == pytest.approx(-0.8, abs=0.3)


def test_condition_accuracy_is_clustered_by_participant():
    trials = planted_panel({"audio": 0.0, "silent_video": 2.0, "sounded_video": 1.0}, n_clips=300, participants=30)
    table = ha.condition_accuracy(trials, n_boot=500, seed=0).set_index("input")
    acc = trials.groupby("condition")["correct"].mean() * 100
    assert table.loc["silent_video", "accuracy (%), simulated humans"] == pytest.approx(acc["silent_video"], abs=0.05)
    assert (table["participants"] == 30).all() and (table["trials"] == 300).all()
    assert table.loc["audio", "paper (%)"] == 71.9
    low, high = json.loads(table.loc["audio", "95% CI (participants resampled)"])
    assert low < acc["audio"] < high


def test_alignment_counts_on_a_hand_made_example():
    labels = ["a1", "a2", "v1", "v2", "p1", "p2"]
    llm = pd.DataFrame(
        {"audio": [0.9, 0.8, 0.2, 0.3, 0.6, 0.5], "visual": [0.3, 0.4, 0.9, 0.8, 0.6, 0.5], "audio-visual": [0.9] * 6},
        index=pd.Index(labels, name="label"),
    )
    chosen = ha.figure1_classes(llm)
    assert dict(zip(chosen["label"], chosen["row"])) == {"a1": "audio better", "a2": "audio better", "v1": "visual better",
                                                         "v2": "visual better", "p1": "on par", "p2": "on par"}
    human = pd.DataFrame(
        {"human ears": [0.9, 0.5, 0.5, 0.1, 0.7, 0.6], "human eyes": [0.2, 0.8, 0.9, 0.9, 0.7, 0.5], "human ears+eyes": [1.0] * 6, "n": 10},
        index=pd.Index(labels, name="label"),
    )
    result = ha.alignment(llm, human, chosen, n_boot=200, seed=0)
    counts = result["counts"]
    assert counts.loc["audio better", "same direction in humans"] == 1  # a1 yes, a2 no (eyes better)
    assert counts.loc["visual better", "same direction in humans"] == 2
    assert counts.loc["both rows", ["same direction in humans", "n"]].tolist() == [3, 4]
    assert counts.loc["both rows", "binomial p (one-sided)"] == pytest.approx(sps.binomtest(3, 4, 0.5, alternative="greater").pvalue)
    assert counts.loc["audio better", "paper"] == "10 of 10" and counts.loc["visual better", "paper"] == "8 of 10"
    # the audio LLM (0.2, 0.3) against human ears (0.5, 0.1) in the visual-better row
    assert result["shortfall"]["audio LLM below human ears"] == 1
    per_class = result["per_class"]
    # on par: an LLM gap of 0 against a human gap of +0.1, and a human gap of 0, are not the same direction
    assert not per_class.loc["p2", "same direction"] and not per_class.loc["p1", "same direction"]
    rho = result["correlation"]
    gaps = per_class["gap LLM"], per_class["gap humans"]
    assert rho["rho"] == pytest.approx(sps.spearmanr(*gaps).statistic) and rho["low"] <= rho["rho"] <= rho["high"]
    flat = human.assign(**{"human eyes": human["human ears"]})
    assert "undefined" in ha.alignment(llm, flat, chosen, n_boot=50)["correlation"]["note"]


def test_figure1_joins_llm_and_human_bars():
    labels = [f"c{i}" for i in range(9)]
    llm = pd.DataFrame({"audio": np.linspace(0.1, 0.9, 9), "visual": np.linspace(0.9, 0.1, 9), "audio-visual": 0.95}, index=pd.Index(labels, name="label"))
    clips = make_clips(9, 3).assign(label=lambda d: d["label"].str.replace("class 0", "c"))
    clips["options"] = [[lab] + [f"x{i}" for i in range(9)] for lab in clips["label"]]
    clips["answer"] = "A"
    design = hd.build_design(clips, 3, seed=0)
    trials = panel.simulate_panel(design, clips[["clip"]].assign(audible=True, visible=True), panel.PanelParams(venue_context=0.0), seed=0)
    human = ha.human_classwise(trials)
    wide = ha.figure1_wide(llm, human)
    bars = ha.figure1_bars(trials)
    assert set(bars) <= set(wide.columns) and len(bars) == 6
    assert all("Simulated" in name for col, name in bars.items() if col.startswith("human"))
    chosen = ha.figure1_classes(llm)
    overall = ha.figure1_overall(llm, trials, chosen, n_boot=100)
    assert overall.loc["Qwen2-Audio", "accuracy (%)"] == pytest.approx(100 * llm.loc[chosen["label"], "audio"].mean(), abs=0.05)
    assert overall.loc["Simulated humans: ears", "paper (%)"] == 71.9


# --------------------------------------------------------------------------------------------
# the notebook, on trials written by the widget


def write_fake_predictions(profile, clips: pd.DataFrame, seed: int = 0) -> None:
    """Predictions of the three Figure-1 LLMs on the analysis split, in the evaluation layout,
    standing in for the analysis chapter's runs (the tiny experts are not trained in tests)."""
    from xmd_core.evaluate import PREDICTION_COLUMNS, run_dir

    rng = np.random.default_rng(seed)
    labels = sorted(clips["label"].unique())
    for column, (model, condition) in ha.LLM_COLUMNS.items():
        p_right = dict(zip(labels, rng.uniform(0.2, 0.95, len(labels))))
        rows = []
        for r in clips.itertuples():
            right = rng.random() < p_right[r.label]
            n = len(r.options)
            predicted = r.answer if right else LETTERS[(LETTERS.index(r.answer) + 1) % n]
            rows.append({"clip": r.clip, "label": r.label, "condition": condition, "options": list(r.options), "answer": r.answer,
                         "letter_logits": [0.0] * 10, "predicted": predicted, "correct": bool(right), "seconds": 0.0, "error": ""})
        out = run_dir(profile, model, "analysis", condition)
        out.mkdir(parents=True, exist_ok=True)
        frame = pd.DataFrame(rows, columns=PREDICTION_COLUMNS)
        frame.to_parquet(out / "shard-00000.parquet")
        record = {"run": model, "model": model, "split": "analysis", "condition": condition, "mode": "letters", "clips": len(frame),
                  "errors": 0, "accuracy": float(frame["correct"].mean()), "timings": {"wall_s": 0.0, "media_wait_s": 0.0}, "status": "done"}
        (out / "run.json").write_text(json.dumps(record))


@pytest.mark.slow
def test_notebook_runs_on_trials_written_by_the_widget(tmp_path):
    import yaml

    from xmd_core.config import PROFILES_DIR, load_profile
    from xmd_core.runner import run_notebook
    from xmd_core.study import prepare

    raw = yaml.safe_load((PROFILES_DIR / "smoke.yaml").read_text())
    raw.update(artifacts_dir=str(tmp_path / "artifacts"), results_dir=str(tmp_path / "results"))
    raw["mcq"]["n_options"] = 4  # the smoke world has 7 classes, too few for ten options
    (tmp_path / "humans.yaml").write_text(yaml.safe_dump(raw))
    cfg = load_profile(tmp_path / "humans.yaml")
    inputs = prepare(cfg, progress=False)
    write_fake_predictions(cfg, inputs.split("analysis"))

    # the design the notebook builds (same call, same defaults), answered by three people
    chosen = ha.figure1_classes(ha.llm_classwise(cfg))
    design = hd.design_for_study(cfg, inputs.split("analysis"), chosen["label"])
    media, clock, rng = FakeMedia(tmp_path / "media"), FakeClock(), np.random.default_rng(0)
    for participant in design["participant"].unique():
        test = ListeningTest(design, participant, hd.trials_dir(cfg) / f"{participant}.csv", media, clock=clock)
        test.start()
        while not test.finished:
            clock.now += float(rng.uniform(1, 6))
            if rng.random() < 0.05:
                test.skip_button.click()
            else:
                visible = [b for b in test.option_buttons if b.layout.display != "none"]
                visible[int(rng.integers(len(visible)))].click()
    executed = run_notebook("02_human_study", cfg, out_dir=tmp_path / "executed", trials_path=str(hd.trials_dir(cfg)))
    notebook = json.loads(executed.read_text())
    outputs = [o for c in notebook["cells"] for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = json.dumps(outputs)
    assert "Humans answered" in text and "simulated" not in text.lower().replace("simulated world", "")
    assert any("image/png" in o.get("data", {}) for o in outputs)  # Figure 1
    # the notebook rebuilt the same design the participants answered
    pd.testing.assert_frame_equal(hd.load_design(hd.design_path(cfg)), design)


def test_the_llms_class_accuracies_come_from_the_original_runs_only(monkeypatch):
    """A distilled student's runs carry its model and condition; Figure 1 must not pool them."""
    from xmd_core import analysis as llm_analysis
    from xmd_core.humans import analysis as ha

    runs = pd.DataFrame([
        {"run": run, "model": model, "split": "analysis", "condition": condition, "mode": "letters"}
        for run, model, condition in [("qwen2-audio", "qwen2-audio", "audio"), ("qwen2-audio@from-qwen2-vl", "qwen2-audio", "audio"),
                                      ("qwen2-vl", "qwen2-vl", "silent_video"), ("qwen2.5-omni", "qwen2.5-omni", "sounded_video")]
    ])
    right_by_run = {"qwen2-audio": False, "qwen2-audio@from-qwen2-vl": True, "qwen2-vl": True, "qwen2.5-omni": True}

    def collect(profile, chosen):
        return pd.concat([pd.DataFrame({"label": ["cat", "dog"], "correct": [right_by_run[r.run]] * 2, "split": r.split,
                                        "model": r.model, "condition": r.condition}) for r in chosen.itertuples()], ignore_index=True)

    monkeypatch.setattr(llm_analysis, "finished_runs", lambda profile: runs)
    monkeypatch.setattr(llm_analysis, "collect", collect)
    wide = ha.llm_classwise(None)
    assert (wide["audio"] == 0).all(), "the distilled student's right answers were pooled with the original's"
    assert (wide["visual"] == 1).all()


def _trial_rows(rows):
    return pd.DataFrame([{"participant": p, "trial": i + 1, "clip": clip, "label": "cat", "condition": condition, "options": ["cat", "dog"],
                          "answer": "A", "response": "A" if right else "B", "correct": right, "rt_s": 1.0, "source": "simulated"}
                         for i, (p, clip, condition, right) in enumerate(rows)])


def test_llms_and_panel_split_by_what_the_input_carries(monkeypatch):
    """Ears on an inaudible clip hold only the venue; the LLM and the panel are compared per group."""
    from xmd_core.humans import by_cue

    draws = pd.DataFrame({"clip": ["heard", "silent"], "audible": [True, False], "visible": [True, True], "venue": ["street", "street"]})
    llm = pd.DataFrame({"clip": ["heard", "silent"], "label": "cat", "model": "qwen2-audio", "condition": "audio", "split": "analysis",
                        "correct": [True, False]})
    monkeypatch.setattr(by_cue, "world_clip_info", lambda profile: draws)
    monkeypatch.setattr(by_cue, "llm_predictions", lambda profile: llm)
    trials = _trial_rows([("P1", "heard", "audio", True), ("P2", "heard", "audio", False), ("P1", "silent", "audio", True)])
    table = by_cue.llms_and_panel_by_cue(None, trials, ["cat"]).set_index("the input carries")
    assert list(table.index) == [by_cue.WITH_CLASS, by_cue.WITHOUT_CLASS]
    assert table.loc[by_cue.WITH_CLASS, "LLM - panel (points)"] == 50.0  # 100% vs 1 of 2
    assert table.loc[by_cue.WITHOUT_CLASS, "LLM - panel (points)"] == -100.0
    assert (table["clips"] == 1).all()


def test_llms_and_panel_by_cue_names_a_clip_the_world_lacks(monkeypatch):
    from xmd_core.humans import by_cue

    monkeypatch.setattr(by_cue, "world_clip_info", lambda profile: pd.DataFrame({"clip": ["other"], "audible": [True], "visible": [True]}))
    monkeypatch.setattr(by_cue, "llm_predictions", lambda profile: pd.DataFrame(
        {"clip": ["heard"], "label": "cat", "model": "qwen2-audio", "condition": "audio", "split": "analysis", "correct": [True]}))
    with pytest.raises(ValueError, match="'heard'"):
        by_cue.llms_and_panel_by_cue(None, _trial_rows([("P1", "heard", "audio", True)]), ["cat"])
