"""`hf://` published models (`keras_lc.hub`), offline: a local folder laid out as Hub repositories,
served by a fake `huggingface_hub.hf_hub_download` that copies files into a cache as the real one
does. Every file is verified against the manifest's sha256, as for any other source."""

import json
import re
import shutil
import sys
import types

import huggingface_hub
import numpy as np
import pytest
import yaml  # PyYAML: a dependency of huggingface_hub

from keras_lc import hub, weights, zoo
from keras_lc.model_card import CARD_FILE
from keras_lc.samples import cifar10_test_sample
from tests.harness import run_cli

NAME = "resnet20_16_cifar10"


class FakeHub:
    """Repositories at `root/ORG/REPO/REVISION/`; downloads copied into `cache/` (as the Hub's cache)."""

    def __init__(self, root, cache):
        self.root, self.cache, self.calls = root, cache, []

    def add(self, repo_id, folder, revision="main"):
        target = self.root / repo_id / revision
        shutil.copytree(folder, target)
        return target

    def hf_hub_download(self, repo_id, filename, revision=None, library_name=None, **kwargs):
        self.calls.append((repo_id, filename, revision or "main", library_name))
        source = self.root / repo_id / (revision or "main") / filename
        if not source.is_file():
            raise huggingface_hub.errors.EntryNotFoundError(f"404: {filename} not in {repo_id}")
        blob = self.cache / "blobs" / f"{repo_id.replace('/', '--')}-{revision}-{filename}"
        blob.parent.mkdir(parents=True, exist_ok=True)
        if not blob.exists():  # the real cache keeps a file once downloaded
            shutil.copyfile(source, blob)
        link = self.cache / "snapshots" / repo_id / (revision or "main") / filename
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(blob)
        return str(link)


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    fake = FakeHub(tmp_path / "hub", tmp_path / "hf-cache")
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake.hf_hub_download)
    entry = weights.published_weights()[NAME]
    fake.add("keras-lc/resnet20-cifar10", weights.packaged_file(entry, entry.file_name).parent, "v1")
    return fake


def test_hub_ids_are_parsed_like_keras_hubs():
    assert hub.parse("hf://keras-lc/resnet20-cifar10") == ("keras-lc/resnet20-cifar10", None)
    assert hub.parse("hf://org.name/repo_1@0123abc") == ("org.name/repo_1", "0123abc")
    for bad in ("hf://only-one-part", "hf://a/b/c", "hf://a/b@", "hf://a/b c", 3):
        with pytest.raises(ValueError, match=r"hf://ORG/REPO or hf://ORG/REPO@REVISION .*Received: "):
            hub.parse(bad)


def test_a_hub_model_loads_as_the_local_one_predicts(fake_hub):
    sample = cifar10_test_sample()
    local = zoo.load_published(NAME).predict(sample.images, verbose=0)
    from_hub = zoo.load_published("hf://keras-lc/resnet20-cifar10@v1")
    assert np.array_equal(from_hub.predict(sample.images, verbose=0), local)
    assert ("keras-lc/resnet20-cifar10", "manifest.json", "v1", "keras-lc") in fake_hub.calls
    assert ("keras-lc/resnet20-cifar10", f"{NAME}.weights.h5", "v1", "keras-lc") in fake_hub.calls
    builder = zoo.get_model("resnet20", weights="hf://keras-lc/resnet20-cifar10@v1")  # its builder too
    assert np.array_equal(builder.predict(sample.images, verbose=0), local)
    backbone = zoo.resnet20(weights="hf://keras-lc/resnet20-cifar10@v1", include_top=False, pooling="avg")
    assert backbone.output_shape == (None, 64)
    assert ("keras-lc/resnet20-cifar10", f"{NAME}_notop.weights.h5", "v1", "keras-lc") in fake_hub.calls


def test_a_corrupted_file_from_the_hub_is_refused_and_not_kept(fake_hub):
    repo = fake_hub.root / "keras-lc/resnet20-cifar10/v1"
    good = (repo / f"{NAME}.weights.h5").read_bytes()
    (repo / f"{NAME}.weights.h5").write_bytes(good[:-10] + b"0123456789")
    with pytest.raises(ValueError, match=rf"'{NAME}.weights.h5' downloaded from hf://keras-lc/resnet20-cifar10@v1 "
                       r"has sha256 [0-9a-f]{64}, but its manifest expects [0-9a-f]{64}: .*it was not kept\)\.$"):
        zoo.load_published("hf://keras-lc/resnet20-cifar10@v1")
    cached = [p for p in fake_hub.cache.rglob("*") if p.name.endswith(f"{NAME}.weights.h5")]
    assert cached == []  # neither the snapshot link nor the blob
    (repo / f"{NAME}.weights.h5").write_bytes(good)  # the repository fixed: downloaded again
    assert zoo.load_published("hf://keras-lc/resnet20-cifar10@v1").output_shape == (None, 10)


def test_hub_mistakes_are_one_line(fake_hub, monkeypatch):
    with pytest.raises(ValueError, match=r"The Hub model hf://keras-lc/resnet20-cifar10@v1 is a 'resnet20', "
                       r"not a 'resnet_lc20_16x128': build it with "
                       r"keras_lc.zoo.load_published\('hf://keras-lc/resnet20-cifar10@v1'\)"):
        zoo.resnet_lc20_16x128(weights="hf://keras-lc/resnet20-cifar10@v1")
    with pytest.raises(OSError, match=r"^Could not get 'manifest.json' of hf://keras-lc/none@v1 from the "
                       r"Hugging Face Hub: 404: manifest.json not in keras-lc/none$"):
        zoo.load_published("hf://keras-lc/none@v1")
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # not installed
    with pytest.raises(ImportError, match=re.escape("need huggingface_hub, which is not installed: "
                                                    "pip install 'keras-lc[hub]'.")):
        zoo.load_published("hf://keras-lc/resnet20-cifar10@v1")


def test_push_then_load_round_trips_and_never_shows_the_token(fake_hub, tmp_path, monkeypatch, capsys):
    calls = []

    class FakeApi:  # uploads into the fake hub, where hf_hub_download then finds the files
        def create_repo(self, repo_id, exist_ok=False):
            calls.append(("create_repo", repo_id, exist_ok))

        def upload_folder(self, repo_id, folder_path, revision=None, commit_message=None):
            calls.append(("upload_folder", repo_id, revision, commit_message))
            fake_hub.add(repo_id, folder_path, revision or "main")
            return types.SimpleNamespace(commit_url=f"https://hub.test/{repo_id}/commit/1")

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setenv("HF_TOKEN", "hf_secret_token_for_the_test")
    entry = weights.published_weights()[NAME]
    folder = tmp_path / NAME
    shutil.copytree(weights.packaged_file(entry, entry.file_name).parent, folder)
    assert hub.push(folder, "hf://me/my-model@main") == "https://hub.test/me/my-model/commit/1"
    assert calls == [("create_repo", "me/my-model", True),
                     ("upload_folder", "me/my-model", "main", f"keras-lc export {NAME}")]
    pushed = fake_hub.root / "me/my-model/main"
    assert {"manifest.json", f"{NAME}.weights.h5", CARD_FILE, f"{NAME}.onnx", "saved_model"} <= {
        p.name for p in pushed.iterdir()}
    sample = cifar10_test_sample()
    assert np.array_equal(zoo.load_published("hf://me/my-model@main").predict(sample.images, verbose=0),
                          zoo.load_published(NAME).predict(sample.images, verbose=0))
    (pushed / f"{NAME}_notop.weights.h5").unlink()  # a repository missing a file: named
    with pytest.raises(OSError, match=rf"Could not get '{NAME}_notop.weights.h5' of hf://me/my-model@main"):
        zoo.load_published("hf://me/my-model@main", include_top=False)
    assert "hf_secret" not in capsys.readouterr().out + "".join(
        p.read_text(errors="ignore") for p in pushed.rglob("*") if p.is_file() and p.suffix in (".md", ".json"))


def test_export_checks_the_push_target_before_exporting(tmp_path, capsys, monkeypatch):
    code, out, err = run_cli(["export", str(tmp_path), "--name", "x", "--push", "hf://no-repo"], capsys)
    assert code == 2 and out == "" and "Received: 'hf://no-repo'" in err and len(err.strip().splitlines()) == 1
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    code, out, err = run_cli(["export", str(tmp_path), "--name", "x", "--push", "hf://me/model"], capsys)
    assert code == 2 and "pip install 'keras-lc[hub]'" in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # nothing exported


def test_the_card_is_a_hub_model_card():
    for name, entry in weights.published_weights().items():
        card = (weights.packaged_file(entry, entry.file_name).parent / CARD_FILE).read_text()
        metadata = yaml.safe_load(re.match(r"\A---\n(.*?)\n---\n", card, flags=re.DOTALL).group(1))
        assert metadata["library_name"] == "keras" and metadata["license"] == "apache-2.0"
        assert metadata["datasets"] == [entry.dataset] and metadata["metrics"] == ["accuracy"]
        (result,) = metadata["model-index"][0]["results"]
        assert [m["value"] for m in result["metrics"]] == [entry.top1, entry.top1_folded]
        assert metadata["model-index"][0]["name"] == name
        assert huggingface_hub.ModelCardData(**metadata).library_name == "keras"


def test_predict_takes_a_hub_id(fake_hub, tmp_path, capsys):
    from PIL import Image

    sample = cifar10_test_sample()
    for i in range(3):
        Image.fromarray(sample.images[i]).save(tmp_path / f"{i}.png")
    code, out, err = run_cli(["predict", "hf://keras-lc/resnet20-cifar10@v1", str(tmp_path), "--top", "1"], capsys)
    assert code == 0, err
    local_code, local_out, _ = run_cli(["predict", NAME, str(tmp_path), "--top", "1"], capsys)
    assert local_code == 0 and out == local_out and len(out.splitlines()) == 3
    code, _, err = run_cli(["predict", "hf://keras-lc", str(tmp_path)], capsys)
    assert code == 2 and "Received: 'hf://keras-lc'" in err and len(err.strip().splitlines()) == 1


def test_evaluate_takes_a_hub_id(fake_hub, cifar_archive, capsys):
    args = ["--data-dir", str(cifar_archive), "--test-per-class", "5"]
    code, out, err = run_cli(["evaluate", "hf://keras-lc/resnet20-cifar10@v1", *args], capsys)
    assert code == 0, err
    from_hub = json.loads(out.strip().splitlines()[-1])
    code, out, _ = run_cli(["evaluate", NAME, *args], capsys)
    local = json.loads(out.strip().splitlines()[-1])
    assert from_hub["model"] == "hf://keras-lc/resnet20-cifar10@v1" and from_hub["test_examples"] == 50
    assert from_hub["top1"] == local["top1"] and from_hub["test_loss"] == local["test_loss"]
