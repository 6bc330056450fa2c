"""`--recipe seed`: each task either has its seed's whole recipe or says what the seed leaves out."""

from __future__ import annotations

import pytest

from dlbench.protocol import JobConfig, Mode, RecipeName
from tasks import TASKS
from tasks.spec import with_recipe
from tests.conftest import needs_data
from tests.support.cli import cli, rows


@pytest.mark.parametrize("name", TASKS)
def test_every_task_has_a_seed_recipe_or_says_what_its_seed_leaves_out(name):
    task = TASKS[name]
    assert (task.seed_recipe is None) == bool(task.seed_gap), "exactly one of the two"
    assert with_recipe(task, "ours") is task
    if task.seed_recipe is None:
        with pytest.raises(ValueError, match=task.seed_gap[:30]):
            with_recipe(task, "seed")
        return
    seed = with_recipe(task, "seed")
    assert seed.recipe is task.seed_recipe and seed.layers == task.layers, "the recipe changes, the model does not"
    assert seed.recipe.validate_on_test and not seed.recipe.early_stopping  # as the seeds train: fixed epochs


def test_the_imdb_seed_recipe_is_the_seeds_10_epochs():
    r = TASKS["imdb_lstm"].seed_recipe
    assert (r.max_epochs, r.batch_size, r.early_stopping, r.validate_on_test) == (10, 32, False, True)


def test_a_job_carries_its_recipe_across_the_process_boundary():
    jc = JobConfig(Mode.RUN, "frameworks.pytorch", 2, task="imdb_lstm", recipe=RecipeName.SEED)
    assert JobConfig.from_json(jc.to_json()).recipe == RecipeName.SEED
    assert JobConfig.from_json(JobConfig(Mode.RUN, "m", 1).to_json()).recipe == RecipeName.OURS


@pytest.mark.parametrize("tasks", ["iris_mlp", "mnist_cnn", "imdb_lstm,iris_mlp", "all"])
def test_a_task_without_a_seed_recipe_is_refused_in_one_line(tasks, tmp_path):
    r = cli("run", "--recipe", "seed", "--tasks", tasks, "--frameworks", "torch", "--results", str(tmp_path))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "has no seed recipe" in r.stderr and "imdb_lstm, imdb_transformer" in r.stderr
    assert not (tmp_path / "runs.jsonl").exists()


@pytest.mark.slow
@needs_data
def test_a_seed_recipe_run_records_its_recipe_and_trains_on_the_whole_training_set(tmp_path, data_dir):
    args = [
        "run",
        "--recipe",
        "seed",
        "--frameworks",
        "torch",
        "--tasks",
        "imdb_lstm",
        "--epochs",
        "1",
        "--data-dir",
        str(data_dir),
        "--results",
        str(tmp_path),
    ]
    r = cli(*args)
    assert r.returncode == 0, r.stderr[-2000:]
    (row,) = rows(tmp_path)
    assert row["status"] == "ok" and row["recipe"] == "seed"
    assert (row["n_train"], row["n_val"], row["n_test"]) == (
        2500,
        1000,
        1000,
    )  # quick: 2,500 fit, the test set validates
    again = cli(*args, "--resume")  # a seed-recipe row is done for a seed-recipe run
    assert again.returncode == 0 and len(rows(tmp_path)) == 1, again.stderr[-2000:]


@pytest.mark.parametrize("recipe", ["ours", "seed"])
def test_resume_counts_a_row_done_only_for_the_recipe_it_ran(recipe):
    import harness
    from dlbench.driver import config
    from dlbench.driver.matrix import same_settings_and_stack
    from dlbench.driver.provenance import environment_sha256
    from frameworks import ALIASES, ENVIRONMENTS, FRAMEWORKS

    a = harness.parser().parse_args(["run", "--recipe", recipe, "--frameworks", "torch", "--tasks", "imdb_lstm"])
    cfg = config.run_config(a, FRAMEWORKS, ALIASES, TASKS)
    prov = {"git": {"commit": "c"}, "environment_sha256": environment_sha256(ENVIRONMENTS["main"])}
    row = {
        "framework": "torch",
        "profile": "quick",
        "threads": cfg.threads,
        "device_requested": "cpu",
        "epochs_cap": None,
        "precision": "fp32",
        "provenance": prov,
    }
    assert same_settings_and_stack(cfg, "c", {**row, "recipe": recipe})
    assert not same_settings_and_stack(cfg, "c", {**row, "recipe": {"ours": "seed", "seed": "ours"}[recipe]})
    assert same_settings_and_stack(cfg, "c", row) == (recipe == "ours"), "a row from before --recipe ran ours"
