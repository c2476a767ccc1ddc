"""Hostile adapter folders (issue 8, point 5): each is refused before anything is copied or the
engine is called, with a message naming the problem and the fix, and the live adapter keeps
serving. Pickled weights are never unpickled; links are never followed."""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from safetensors.torch import save_file

from feedback import Store
from feedback.api_keys import ApiKeys
from serve.adapter_checks import AdapterLimits, describe_base, validate_adapter
from serve.adapters import AdapterRegistry
from serve.config import Settings
from serve.errors import AdapterRejected
from serve.gateway import create_app
from tests.unit.adapter_files import write_adapter

BASE = "Tiny-1"
BASE_PATH = f"/models/{BASE}"
HIDDEN, KV = 16, 8  # q_proj: 16 -> 16, v_proj: 16 -> 8
A, B = (
    "base_model.model.model.layers.0.self_attn.{}.lora_A.weight",
    ("base_model.model.model.layers.0.self_attn.{}.lora_B.weight"),
)


def make_base(folder: Path) -> Path:
    """A base model folder as the engine has it: only the weight names and shapes matter here."""
    folder.mkdir(parents=True)
    weights = {
        "model.embed_tokens.weight": torch.zeros(32, HIDDEN),
        "model.layers.0.self_attn.q_proj.weight": torch.zeros(HIDDEN, HIDDEN),
        "model.layers.0.self_attn.v_proj.weight": torch.zeros(KV, HIDDEN),
    }
    save_file(weights, str(folder / "model.safetensors"))
    return folder


def good_weights(rank: int = 8, seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return {
        A.format("q_proj"): torch.randn(rank, HIDDEN),
        B.format("q_proj"): torch.randn(HIDDEN, rank),
        A.format("v_proj"): torch.randn(rank, HIDDEN),
        B.format("v_proj"): torch.randn(KV, rank),
    }


def make_adapter(path: Path, weights: dict | None = None, **config) -> Path:
    """A LoRA on q_proj and v_proj of the tiny base (good weights unless given)."""
    config = {"target_modules": ("q_proj", "v_proj"), **config}
    return write_adapter(path, good_weights() if weights is None else weights, BASE_PATH, **config)


def forged_safetensors(file: Path, header: dict, data: bytes, length: int | None = None) -> None:
    raw = json.dumps(header).encode()
    size = len(raw) if length is None else length
    file.write_bytes(size.to_bytes(8, "little") + raw + data)


class Payload:
    """Unpickling this creates `marker`: proof that a pickle was loaded."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


# -- the hostile folders: each builder makes one in `tmp` and returns (path, message) -------------


def wrong_base(tmp: Path):
    return make_adapter(tmp / "a", base_model_name_or_path="/models/Llama-3-8B"), "trained on"


def rank_too_high(tmp: Path):
    return make_adapter(tmp / "a", weights=good_weights(64), r=64), "rank 64 is outside 1..16"


def rank_hidden_in_rank_pattern(tmp: Path):
    return make_adapter(tmp / "a", rank_pattern={"q_proj": 128}), "rank_pattern"


def dora_in_config(tmp: Path):
    return make_adapter(tmp / "a", use_dora=True), "DoRA .* use_dora=False"


def dora_in_weights(tmp: Path):
    weights = {**good_weights(), "base_model.model.q_proj.lora_magnitude_vector": torch.ones(16)}
    return make_adapter(tmp / "a", weights=weights), "DoRA"


def modules_to_save(tmp: Path):
    return make_adapter(tmp / "a", modules_to_save=["score"]), "modules_to_save"


def fully_trained_module_in_weights(tmp: Path):
    weights = {**good_weights(), "base_model.model.score.weight": torch.zeros(2, HIDDEN)}
    return make_adapter(tmp / "a", weights=weights), "not a LoRA A or B matrix"


def resized_embeddings(tmp: Path):
    weights = {**good_weights(), "base_model.model.model.embed_tokens.weight": torch.zeros(4, 4)}
    return make_adapter(tmp / "a", weights=weights), "embeddings"


def added_tokens_file(tmp: Path):
    path = make_adapter(tmp / "a")
    save_file(
        {"input_embeddings": torch.zeros(2, HIDDEN)}, str(path / "new_embeddings.safetensors")
    )
    return path, "add tokens"


def missing_safetensors(tmp: Path):
    path = make_adapter(tmp / "a")
    (path / "adapter_model.safetensors").unlink()
    return path, r"no adapter_model\.safetensors; re-save"


def pickle_only_weights(tmp: Path):
    path = make_adapter(tmp / "a")
    (path / "adapter_model.safetensors").unlink()
    (path / "adapter_model.bin").write_bytes(pickle.dumps(Payload(tmp / "PWNED")))
    return path, "pickled weights .* are refused"


def truncated_safetensors(tmp: Path):
    path = make_adapter(tmp / "a")
    weights = path / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])  # the header is whole, the data is not
    return path, "cannot be read as safetensors: .* lies at bytes"


def header_longer_than_the_file(tmp: Path):
    path = make_adapter(tmp / "a")
    forged_safetensors(path / "adapter_model.safetensors", {}, b"", length=2**63)
    return path, "declares a 9223372036854775808-byte header"


def offsets_past_the_end(tmp: Path):
    path = make_adapter(tmp / "a")
    entry = {"dtype": "F32", "shape": [8, 16], "data_offsets": [0, 512]}
    forged_safetensors(path / "adapter_model.safetensors", {A.format("q_proj"): entry}, b"\0" * 8)
    return path, "lies at bytes 0..512 of a 8-byte data section"


def offsets_that_disagree_with_the_shape(tmp: Path):
    path = make_adapter(tmp / "a")
    entry = {"dtype": "F32", "shape": [8, 16], "data_offsets": [0, 8]}
    forged_safetensors(path / "adapter_model.safetensors", {A.format("q_proj"): entry}, b"\0" * 8)
    return path, "holds 8 bytes, not what F32"


def overlapping_tensors(tmp: Path):
    path = make_adapter(tmp / "a")
    entry = {"dtype": "F32", "shape": [1, 2], "data_offsets": [0, 8]}
    header = {A.format("q_proj"): entry, A.format("v_proj"): entry}
    forged_safetensors(path / "adapter_model.safetensors", header, b"\0" * 8)
    return path, "overlap or leave a gap"


def header_not_json(tmp: Path):
    path = make_adapter(tmp / "a")
    (path / "adapter_model.safetensors").write_bytes((4).to_bytes(8, "little") + b"{{{{")
    return path, "header is not valid JSON"


def integer_tensors(tmp: Path):
    weights = {**good_weights(), A.format("q_proj"): torch.zeros(8, HIDDEN, dtype=torch.int64)}
    return make_adapter(tmp / "a", weights=weights), "is I64; LoRA weights must be F16"


def nan_weights(tmp: Path):
    weights = good_weights()
    weights[B.format("v_proj")][0, 0] = float("nan")
    return make_adapter(tmp / "a", weights=weights), "NaN or infinite .* lower learning rate"


def inf_weights(tmp: Path):
    weights = good_weights()
    weights[A.format("q_proj")][3, 1] = float("inf")
    return make_adapter(tmp / "a", weights=weights), "NaN or infinite"


def rank_disagrees_with_config(tmp: Path):
    return make_adapter(tmp / "a", weights=good_weights(rank=4)), "rank 4 but .* says r=8"


def shape_that_does_not_fit_the_base(tmp: Path):
    weights = {**good_weights(), A.format("q_proj"): torch.zeros(8, 99)}
    return make_adapter(tmp / "a", weights=weights), r"does not fit .*q_proj.* \(16 out x 16 in\)"


def module_the_base_lacks(tmp: Path):
    weights = {**good_weights(), A.format("x_proj"): torch.zeros(8, HIDDEN)}
    return make_adapter(tmp / "a", weights=weights), "module the base model does not have"


def not_a_matrix(tmp: Path):
    weights = {**good_weights(), A.format("q_proj"): torch.zeros(8, HIDDEN, 1)}
    return make_adapter(tmp / "a", weights=weights), "not a matrix"


def target_the_base_lacks(tmp: Path):
    return make_adapter(tmp / "a", target_modules=["q_proj", "mlp_x"]), "do not exist"


def target_modules_not_names(tmp: Path):
    return make_adapter(tmp / "a", target_modules=[{"$ref": 1}]), "module names or one regex"


def config_not_an_object(tmp: Path):
    path = make_adapter(tmp / "a")
    (path / "adapter_config.json").write_text("[1, 2, 3]")
    return path, "must hold a JSON object"


def config_huge(tmp: Path):
    path = make_adapter(tmp / "a")
    (path / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "x": "y" * 2**21}))
    return path, "over the 1024 KiB a PEFT config needs"


def config_nested_too_deep(tmp: Path):
    path = make_adapter(tmp / "a")
    (path / "adapter_config.json").write_text("[" * 200_000 + "]" * 200_000)
    return path, "not valid JSON"


def dot_dot_in_the_path(tmp: Path):
    make_adapter(tmp / "a")
    (tmp / "b").mkdir()
    return tmp / "b" / ".." / "a", "contains '..'"


def nul_byte_in_the_path(tmp: Path):
    return Path(f"{tmp}/a\x00b"), "NUL byte"


def symlink_to_a_file_outside(tmp: Path):
    path = make_adapter(tmp / "a")
    (path / "README.md").symlink_to("/etc/passwd")
    return path, "README.md is a symbolic link; copy the real file"


def symlinked_weights(tmp: Path):
    real = make_adapter(tmp / "real")
    path = make_adapter(tmp / "a")
    (path / "adapter_model.safetensors").unlink()
    (path / "adapter_model.safetensors").symlink_to(real / "adapter_model.safetensors")
    return path, "symbolic link"


def symlinked_sub_folder(tmp: Path):
    path = make_adapter(tmp / "a")
    (path / "tokenizer").symlink_to("/etc", target_is_directory=True)
    return path, "tokenizer is a symbolic link"


def the_folder_itself_a_symlink(tmp: Path):
    make_adapter(tmp / "real")
    (tmp / "link").symlink_to(tmp / "real", target_is_directory=True)
    return tmp / "link", "is a symbolic link .* give the real folder"


def hard_link_to_a_file_outside(tmp: Path):
    path = make_adapter(tmp / "a")
    (tmp / "secret.txt").write_text("not yours")
    os.link(tmp / "secret.txt", path / "notes.txt")
    return path, "hard link"


def a_pipe_in_the_folder(tmp: Path):
    path = make_adapter(tmp / "a")
    os.mkfifo(path / "tokenizer.json")  # reading it would block the gateway forever
    return path, "not a regular file"


def too_many_files(tmp: Path):
    path = make_adapter(tmp / "a")
    for i in range(120):
        (path / f"f{i}.txt").write_text("x")
    return path, "more than 100 files"


def too_many_bytes(tmp: Path):
    path = make_adapter(tmp / "a")
    with open(path / "padding.txt", "wb") as f:
        f.truncate((2 << 30) + 1)  # sparse: over the 2 GiB cap without writing it
    return path, "more than 2048 MiB"


def not_a_folder(tmp: Path):
    tmp.mkdir(exist_ok=True)
    (tmp / "file").write_text("{}")
    return tmp / "file", "not a folder"


HOSTILE: list[Callable[[Path], tuple[Path, str]]] = [
    wrong_base,
    rank_too_high,
    rank_hidden_in_rank_pattern,
    dora_in_config,
    dora_in_weights,
    modules_to_save,
    fully_trained_module_in_weights,
    resized_embeddings,
    added_tokens_file,
    missing_safetensors,
    pickle_only_weights,
    truncated_safetensors,
    header_longer_than_the_file,
    offsets_past_the_end,
    offsets_that_disagree_with_the_shape,
    overlapping_tensors,
    header_not_json,
    integer_tensors,
    nan_weights,
    inf_weights,
    rank_disagrees_with_config,
    shape_that_does_not_fit_the_base,
    module_the_base_lacks,
    not_a_matrix,
    target_the_base_lacks,
    target_modules_not_names,
    config_not_an_object,
    config_huge,
    config_nested_too_deep,
    dot_dot_in_the_path,
    nul_byte_in_the_path,
    symlink_to_a_file_outside,
    symlinked_weights,
    symlinked_sub_folder,
    the_folder_itself_a_symlink,
    hard_link_to_a_file_outside,
    a_pipe_in_the_folder,
    too_many_files,
    too_many_bytes,
    not_a_folder,
]


@pytest.fixture
def base(tmp_path) -> Path:
    return make_base(tmp_path / "models" / BASE)


@pytest.fixture
def no_unpickling(monkeypatch):
    """Any torch.load or pickle.load during a check fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("a pickle was loaded")

    for module, name in ((torch, "load"), (pickle, "load"), (pickle, "loads")):
        monkeypatch.setattr(module, name, refuse)


def test_the_good_adapter_used_below_passes(tmp_path, base):
    config = validate_adapter(
        make_adapter(tmp_path / "ok"), str(base), 16, describe_base(str(base))
    )
    assert config["r"] == 8


def test_a_real_peft_adapter_fits_its_real_base(tmp_path):
    """The shape checks agree with what PEFT writes for a transformers model."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(tmp_path / "base")
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"])
    get_peft_model(model, lora).save_pretrained(tmp_path / "adapter")
    base = str(tmp_path / "base")
    assert validate_adapter(tmp_path / "adapter", base, 16, describe_base(base))["r"] == 4


@pytest.mark.parametrize("hostile", HOSTILE, ids=lambda f: f.__name__)
def test_hostile_folder_is_refused_with_the_problem_and_the_fix(
    hostile, tmp_path, base, no_unpickling
):
    path, message = hostile(tmp_path / "in")
    with pytest.raises(AdapterRejected, match=message) as refused:
        validate_adapter(path, str(base), 16, describe_base(str(base)))
    assert refused.value.status == 422
    assert not (tmp_path / "in" / "PWNED").exists()


def test_the_pickle_used_above_would_run_code_if_loaded(tmp_path):
    """Guards the pickle case: its payload is live, so refusing it unread is what protects us."""
    pickle.loads(pickle.dumps(Payload(tmp_path / "ran")))
    assert (tmp_path / "ran").exists()


# -- through the registry: nothing copied, the engine never called, live keeps serving ----------


def run(coro):
    return asyncio.run(coro)


@pytest.fixture
def serving(tmp_path, base, monkeypatch):
    """A registry with a good adapter live, an engine that must not be called again, and a log."""
    registry = AdapterRegistry(
        Store(None),
        tmp_path / "data" / "adapters",
        BASE,
        str(base),
        max_rank=16,
        engine_url="http://127.0.0.1:9",  # nothing listens: any real call would fail
        keys_exist=lambda: False,
    )
    loads: list[str] = []

    async def fake_load(engine_name: str, path: Path) -> None:
        loads.append(engine_name)
        registry.loaded.add(engine_name)

    monkeypatch.setattr(registry, "load", fake_load)
    run(registry.register("tone", make_adapter(tmp_path / "good")))
    run(registry.promote("tone"))
    assert registry.resolve("live") == "tone@1" and loads == ["tone@1"]

    def no_engine(*args, **kwargs):
        raise AssertionError("the engine was called for a rejected adapter")

    monkeypatch.setattr("serve.adapters.httpx.AsyncClient", no_engine)
    return registry, loads


@pytest.mark.parametrize("hostile", HOSTILE, ids=lambda f: f.__name__)
def test_registry_refuses_before_copy_or_load_and_live_keeps_serving(
    hostile, tmp_path, serving, no_unpickling
):
    registry, loads = serving
    managed = sorted((registry.root / "sha256").iterdir())
    path, message = hostile(tmp_path / "in")
    with pytest.raises(AdapterRejected, match=message):
        run(registry.register("bad", path))
    assert loads == ["tone@1"]  # the engine was never asked to load it
    assert sorted((registry.root / "sha256").iterdir()) == managed  # nothing copied
    assert [r["engine_name"] for r in registry.store.adapters()] == ["tone@1"]
    assert registry.resolve("live") == "tone@1"
    assert not (tmp_path / "in" / "PWNED").exists()


def test_pickle_files_beside_safetensors_are_never_copied_or_loaded(
    tmp_path, serving, no_unpickling
):
    registry, _ = serving
    path = make_adapter(tmp_path / "with-bin", weights=good_weights(seed=1))
    (path / "training_args.bin").write_bytes(pickle.dumps(Payload(tmp_path / "PWNED")))
    (path / "adapter_model.bin").write_bytes(pickle.dumps(Payload(tmp_path / "PWNED")))
    row = run(registry.register("tone", path))
    copied = {p.name for p in Path(row["path"]).iterdir()}
    assert copied == {"adapter_config.json", "adapter_model.safetensors"}
    assert not (tmp_path / "PWNED").exists()


def test_a_folder_swapped_for_a_link_after_the_checks_is_not_followed(tmp_path, serving):
    registry, _ = serving
    path = make_adapter(tmp_path / "racy", weights=good_weights(seed=2))
    original = registry._validate

    def validate_then_swap(folder, roots):
        config = original(folder, roots)
        if folder == path:  # the attacker wins the race right after validation
            (path / "tokenizer.json").symlink_to("/etc/passwd")
        return config

    registry._validate = validate_then_swap
    with pytest.raises(AdapterRejected, match="symbolic link"):
        run(registry.register("racy", path))
    assert [r["engine_name"] for r in registry.store.adapters()] == ["tone@1"]
    assert not list((registry.root / "sha256").glob("*.tmp"))


def test_weights_changed_after_the_checks_are_refused(tmp_path, serving):
    registry, _ = serving
    path = make_adapter(tmp_path / "racy", weights=good_weights(seed=3))
    original = registry._validate

    def validate_then_change(folder, roots):
        config = original(folder, roots)
        if folder == path:
            weights = good_weights(seed=3)
            weights[A.format("q_proj")][0, 0] = float("nan")
            save_file(weights, str(path / "adapter_model.safetensors"))
        return config

    registry._validate = validate_then_change
    with pytest.raises(AdapterRejected):
        run(registry.register("racy", path))
    assert [r["engine_name"] for r in registry.store.adapters()] == ["tone@1"]


# -- allowed folders -----------------------------------------------------------------------------


def test_local_mode_accepts_any_readable_folder(tmp_path, base):
    registry = AdapterRegistry(
        Store(None), tmp_path / "data" / "adapters", BASE, str(base), 16, keys_exist=lambda: False
    )
    assert registry.allowed_roots() is None
    assert run(registry.register("x", make_adapter(tmp_path / "elsewhere" / "a")))["version"] == 1


def test_once_a_key_exists_only_the_data_dir_and_given_roots_are_accepted(tmp_path, base):
    store = Store(None)
    ApiKeys(store).create("ops", "admin")
    data = tmp_path / "data"
    registry = AdapterRegistry(
        store,
        data / "adapters",
        BASE,
        str(base),
        16,
        adapter_roots=[tmp_path / "shared"],
        keys_exist=ApiKeys(store).any_active,
    )
    with pytest.raises(AdapterRejected, match=r"outside the folders .* `--adapter-root DIR`"):
        run(registry.register("x", make_adapter(tmp_path / "elsewhere" / "a")))
    trained = make_adapter(data / "runs" / "job-1" / "adapter", weights=good_weights(seed=1))
    assert run(registry.register("x", trained))["version"] == 1  # where `flywheel train` writes
    shared = make_adapter(tmp_path / "shared" / "b", weights=good_weights(seed=2))
    assert run(registry.register("x", shared))["version"] == 2


def test_a_given_root_restricts_even_in_local_mode(tmp_path, base):
    registry = AdapterRegistry(
        Store(None),
        tmp_path / "data" / "adapters",
        BASE,
        str(base),
        16,
        adapter_roots=[tmp_path / "ok"],
        keys_exist=lambda: False,
    )
    with pytest.raises(AdapterRejected, match="outside"):
        run(registry.register("x", make_adapter(tmp_path / "elsewhere")))
    assert run(registry.register("x", make_adapter(tmp_path / "ok" / "a")))["version"] == 1


def test_a_link_from_an_allowed_root_to_elsewhere_is_outside(tmp_path, base):
    registry = AdapterRegistry(
        Store(None),
        tmp_path / "data" / "adapters",
        BASE,
        str(base),
        16,
        adapter_roots=[tmp_path / "ok"],
        keys_exist=lambda: False,
    )
    make_adapter(tmp_path / "elsewhere")
    (tmp_path / "ok").mkdir()
    (tmp_path / "ok" / "link").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(AdapterRejected, match="outside"):
        run(registry.register("x", tmp_path / "ok" / "link"))


def test_caps_are_configurable(tmp_path, base):
    path = make_adapter(tmp_path / "a")
    with pytest.raises(AdapterRejected, match="more than 1000 bytes"):
        validate_adapter(path, str(base), 16, limits=AdapterLimits(max_bytes=1000))
    with pytest.raises(AdapterRejected, match="more than 1 files"):
        validate_adapter(path, str(base), 16, limits=AdapterLimits(max_files=1))


def test_the_gateway_answers_a_refusal_in_openai_shape(tmp_path, base):
    settings = Settings(
        str(base), BASE, data_dir=tmp_path / "data", ui=False, engine_url="http://127.0.0.1:9"
    )
    client = TestClient(base_url="http://127.0.0.1", app=create_app(settings))
    _, secret = ApiKeys(client.app.state.services.store).create("ops", "admin")
    body = {"name": "x", "path": str(make_adapter(tmp_path / "elsewhere"))}
    resp = client.post("/v1/adapters", json=body, headers={"Authorization": f"Bearer {secret}"})
    assert resp.status_code == 422
    error = resp.json()["error"]
    assert error["code"] == "adapter_rejected" and "outside the folders" in error["message"]


# -- values, in every float type ----------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf"), None])
def test_non_finite_values_are_found_in_every_float_type(tmp_path, base, dtype, bad):
    weights = {name: w.to(dtype) for name, w in good_weights().items()}
    weights[B.format("q_proj")][-1, -1] = 65504.0 if bad is None else bad  # float16's largest
    adapter = make_adapter(tmp_path / "a", weights=weights)
    if bad is None:
        assert validate_adapter(adapter, BASE, 16, describe_base(str(base)))["r"] == 8
    else:
        with pytest.raises(AdapterRejected, match="NaN or infinite"):
            validate_adapter(adapter, BASE, 16, describe_base(str(base)))


def test_the_checks_never_import_torch(tmp_path, base):
    """torch would add ~200 MiB to the gateway's resident memory at its first registration."""
    adapter = make_adapter(tmp_path / "a")
    script = (
        "import sys\n"
        "from serve.adapter_checks import describe_base, validate_adapter\n"
        f"validate_adapter({str(adapter)!r}, {BASE!r}, 16, describe_base({str(base)!r}))\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
