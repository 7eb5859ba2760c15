"""Settings: validation with clear messages, YAML round trip, the settings that name chunks."""

import pytest

from bestofn.config import BestOfNConfig, chunk_keys, stage_keys
from bestofn.errors import BestOfNError


def test_defaults_replicate_the_paper_setup():
    c = BestOfNConfig()
    assert (c.generator, c.prm, c.dataset) == (
        "Qwen/Qwen2.5-1.5B-Instruct", "Skywork/Skywork-o1-Open-PRM-Qwen-2.5-1.5B", "HuggingFaceH4/MATH-500")
    assert (c.levels, c.num_problems, c.n, c.temperature, c.top_p, c.max_new_tokens, c.seed) == (
        [1, 2, 3], 20, 16, 0.8, 1.0, 2048, 0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"levels": [0, 1]}, "levels must be a non-empty subset of 1-5"),
        ({"levels": [6]}, "levels"),
        ({"n": 0}, "n must be at least 1"),
        ({"num_problems": 0}, "num_problems"),
        ({"temperature": 0}, "temperature must be > 0"),
        ({"top_p": 1.5}, "top_p"),
        ({"backend": "tgi"}, "backend must be"),
        ({"aggregation": "max"}, "aggregation"),
        ({"max_model_len": 0}, "max_model_len must be at least 1, got 0"),
        ({"tensor_parallel_size": 0}, "tensor_parallel_size must be at least 1"),
        ({"user_template": "no placeholder"}, "{problem}"),
        ({"grading_timeout": 0}, "grading_timeout must be at least 1, got 0"),
        ({"grading_timeout": -1}, "grading_timeout must be at least 1, got -1"),
        # issue 28: every count where zero means nothing is refused (it was accepted and silently ignored)
        ({"prm_max_length": 0}, "prm_max_length must be at least 1, got 0; e.g. prm_max_length: 4096"),
        ({"prm_batch_tokens": 0}, "prm_batch_tokens must be at least 1, got 0; e.g. prm_batch_tokens: 8192"),
        ({"generation_batch_tokens": 0}, "generation_batch_tokens must be at least 1, got 0"),
        ({"generation_batch_size": -2}, "generation_batch_size must be at least 1, got -2"),
        ({"workers": 0}, "workers must be at least 1, got 0"),
        ({"max_new_tokens": 0}, "max_new_tokens must be at least 1, got 0"),
        ({"beam_width": 0}, "beam_width must be at least 1, got 0"),  # Best-of-N too: a value that means nothing
        ({"num_iterations": 0, "method": "beam_search"}, "num_iterations must be at least 1, got 0"),
        ({"lookahead": -1}, "lookahead must be at least 0, got -1"),
        ({"num_problems": 0}, r"num_problems must be at least 1 \(or all\), got 0"),
        ({"device": "gpu"}, r"device must be auto, cpu, cuda or cuda:N \(a GPU's index, e.g. cuda:1\), got 'gpu'"),
        ({"device": "cuda:x"}, "device must be auto, cpu, cuda or cuda:N"),
        ({"output_dir": ""}, "--output-dir is empty"),
        ({"output_dir": "  "}, "--output-dir is empty"),
        ({"output_dir": "/"}, "--output-dir / is the filesystem root"),
        ({"output_dir": "~"}, "--output-dir ~ is your home folder"),
    ],
)
def test_invalid_settings(kwargs, message):
    with pytest.raises(BestOfNError, match=message.replace("{", r"\{").replace("}", r"\}")):
        BestOfNConfig(**kwargs)


def test_yaml_round_trip_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(BestOfNConfig(n=4, levels=[2]).to_yaml())
    c = BestOfNConfig.from_yaml(path, n=8, temperature=None)
    assert (c.n, c.levels, c.temperature) == (8, [2], 0.8)


def test_unknown_key_is_named(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("num_samples: 4\n")
    with pytest.raises(BestOfNError, match=r"unknown config keys \['num_samples'\]"):
        BestOfNConfig.from_yaml(path)


def test_grading_timeout_is_documented_with_its_range(capsys):
    from bestofn.cli import main

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "a whole number >= 1" in " ".join(capsys.readouterr().out.split())


def test_shipped_recipe_loads():
    from pathlib import Path

    recipe = Path(__file__).resolve().parents[1] / "recipes" / "best_of_n.yaml"
    c = BestOfNConfig.from_yaml(recipe)
    assert c.n == 16 and c.backend == "vllm" and c.prm == BestOfNConfig().prm


def _names(config: BestOfNConfig, stage: str) -> dict:
    """What a chunk of ``stage`` is named by, besides its inputs: the values of its settings."""
    return {k: getattr(config, k) for k in chunk_keys(stage, config.method)}


def test_chunk_names_follow_dependencies():
    base = BestOfNConfig()
    hotter = BestOfNConfig(temperature=1.2)
    other_prm = BestOfNConfig(prm="other/prm")
    faster = BestOfNConfig(generation_batch_size=8, prm_batch_tokens=1024, device="cpu", ray_address="auto", workers=3)
    assert _names(base, "greedy") == _names(hotter, "greedy")  # greedy ignores temperature: a sweep shares it
    assert _names(base, "samples") != _names(hotter, "samples")
    assert _names(base, "samples") == _names(other_prm, "samples")  # a new PRM rescores the same samples
    assert _names(base, "scores") != _names(other_prm, "scores")
    assert _names(base, "scores") == _names(hotter, "scores")  # scores depend on the PRM and the texts they read
    assert all(_names(base, s) == _names(faster, s) for s in ("greedy", "samples", "scores"))
    # a search's samples are chosen by the PRM: they depend on it, and on the aggregation that ranks beams
    search = BestOfNConfig(method="beam_search")
    assert _names(search, "samples") != _names(BestOfNConfig(method="beam_search", prm="other/prm"), "samples")
    assert _names(search, "samples") != _names(BestOfNConfig(method="beam_search", aggregation="min"), "samples")
    assert _names(base, "samples") == _names(BestOfNConfig(aggregation="min"), "samples")
    assert stage_keys("problems") <= stage_keys("greedy") <= stage_keys("samples") <= stage_keys("scores")
    assert not chunk_keys("samples") & (stage_keys("problems") - {"seed"}), "the problems themselves name a chunk"
    assert "seed" in chunk_keys("samples") and "seed" in chunk_keys("samples", "beam_search"), "it seeds sampling"
    assert "prm_format" in chunk_keys("samples", "beam_search"), "the PRM's format steers a search"


# --- types, from the field annotations -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n": "four"}, r"n must be an integer, got 'four'; e\.g\. n: 16"),
        ({"n": 4.7}, r"n must be an integer, got 4\.7"),
        ({"n": True}, r"n must be an integer, got True"),
        ({"temperature": "0.8"}, r"temperature must be a finite number, got '0\.8' \(a string: write it without quotes\)"),
        ({"temperature": float("nan")}, r"temperature must be a finite number, got nan"),
        ({"top_p": float("inf")}, r"top_p must be a finite number, got inf"),
        ({"levels": 2}, r"levels must be a list of integers, got 2; e\.g\. levels: \[1, 2, 3\]"),
        ({"levels": [1, "2"]}, r"levels must be a list of integers, got \[1, '2'\]"),
        ({"max_model_len": "big"}, r"max_model_len must be an integer or null, got 'big'; e\.g\. max_model_len: 4096"),
        ({"enforce_eager": "yes"}, r"enforce_eager must be true or false"),
        ({"generator": 42}, r"generator must be a string, got 42"),
        ({"dtype": "fp8"}, r"dtype must be one of auto, bfloat16, float16, float32, got 'fp8'"),
    ],
)
def test_values_are_checked_against_the_field_types(kwargs, message):
    with pytest.raises(BestOfNError, match=message):
        BestOfNConfig(**kwargs)


def test_a_recipe_error_names_the_file(tmp_path):
    from bestofn.config import read_recipe

    path = tmp_path / "r.yaml"
    path.write_text("n: 16\ntemperature: [0.8]\n")
    with pytest.raises(BestOfNError, match=r"config file .*r\.yaml: temperature must be a finite number, got \[0\.8\]"):
        read_recipe(path)
    path.write_text("n: 16\n\tbad: tab\n")
    with pytest.raises(BestOfNError, match=r"config file .*r\.yaml is not valid YAML at line 2, column 1"):
        read_recipe(path)


def test_whole_numbers_for_float_settings_name_chunks_like_floats(tmp_path):
    from bestofn.rundir import content_key

    path = tmp_path / "r.yaml"
    path.write_text("temperature: 1\ntop_p: 1\n")
    c = BestOfNConfig.from_yaml(path)
    assert type(c.temperature) is float
    assert content_key(_names(c, "samples")) == content_key(_names(BestOfNConfig(temperature=1.0), "samples"))


