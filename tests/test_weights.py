"""Verified weight downloads through a real HTTP server on 127.0.0.1."""

import dataclasses
import functools
import hashlib
import http.server
import json
import threading

import pytest

from keras_lc import manifest as manifest_lib
from keras_lc import weights as weights_lib
from keras_lc.weights import PretrainedWeights

PAYLOAD = bytes(range(256)) * 64  # stands for a weights file


class _Handler(http.server.SimpleHTTPRequestHandler):
    requests = []

    def do_GET(self):
        _Handler.requests.append(self.path)
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "mirror"
    root.mkdir()
    (root / "tiny.weights.h5").write_bytes(PAYLOAD)
    handler = functools.partial(_Handler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    _Handler.requests = []
    yield httpd, f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()
    httpd.server_close()


def _entry(**changes):
    entry = PretrainedWeights(
        name="tiny_cifar10", model="resnet_lc20", model_kwargs={"expansion": 1}, weights="cifar10",
        dataset="cifar10", classes=10, file_name="tiny.weights.h5",
        sha256=hashlib.sha256(PAYLOAD).hexdigest(), top1=0.5, top1_folded=0.5, epochs=1,
        recipe="test", command="none", trainable_params=1, total_params=1,
    )
    return dataclasses.replace(entry, **changes)


def _cache_files(cache):
    folder = cache / "weights"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_cache_hit_and_corrupted_cache(server, tmp_path, monkeypatch):
    _, url, _ = server
    cache = tmp_path / "cache"
    monkeypatch.setenv("KERAS_LC_CACHE", str(cache))  # read at call time
    monkeypatch.setenv("KERAS_LC_WEIGHTS_URL", url)
    path = weights_lib.fetch(_entry())
    assert path == cache / "weights" / "tiny.weights.h5"
    assert path.read_bytes() == PAYLOAD and len(_Handler.requests) == 1
    assert weights_lib.fetch(_entry()) == path and len(_Handler.requests) == 1  # cache hit
    path.write_bytes(PAYLOAD[:1000])  # truncated
    assert weights_lib.fetch(_entry()).read_bytes() == PAYLOAD and len(_Handler.requests) == 2
    assert _cache_files(cache) == ["tiny.weights.h5"]
    for corrupted in _corruptions(_entry().sha256):  # whichever way its hash sorts
        path.write_bytes(corrupted)
        assert weights_lib.fetch(_entry()).read_bytes() == PAYLOAD
    assert len(_Handler.requests) == 4 and _cache_files(cache) == ["tiny.weights.h5"]


def _corruptions(expected):
    """Two corrupted copies of PAYLOAD, one whose sha256 sorts before `expected` and one after:
    a check comparing hashes by anything but equality lets one of them through."""
    below = above = None
    for size in range(1, len(PAYLOAD)):
        digest = hashlib.sha256(PAYLOAD[:size]).hexdigest()
        if digest < expected:
            below = below or PAYLOAD[:size]
        else:
            above = above or PAYLOAD[:size]
        if below and above:
            return below, above
    raise AssertionError("no corruption found on both sides")


def test_per_call_cache_dir_and_base_url(server, tmp_path, monkeypatch):
    _, url, _ = server
    monkeypatch.delenv("KERAS_LC_WEIGHTS_URL", raising=False)
    path = weights_lib.fetch(_entry(), cache_dir=tmp_path / "c2", base_url=url + "/")
    assert path.read_bytes() == PAYLOAD and _Handler.requests == ["/tiny.weights.h5"]


def test_wrong_hash_leaves_nothing_in_the_cache(server, tmp_path):
    _, url, _ = server
    expected = "0" * 64
    with pytest.raises(ValueError, match=rf"has sha256 {hashlib.sha256(PAYLOAD).hexdigest()}, expected {expected}"):
        weights_lib.fetch(_entry(sha256=expected), cache_dir=tmp_path / "c", base_url=url)
    assert _cache_files(tmp_path / "c") == []


def test_server_down_and_missing_file(server, tmp_path):
    httpd, url, root = server
    (root / "tiny.weights.h5").unlink()
    with pytest.raises(OSError, match=r"Could not download the weights 'tiny_cifar10' from .*404"):
        weights_lib.fetch(_entry(), cache_dir=tmp_path / "c", base_url=url)
    httpd.shutdown()
    httpd.server_close()
    with pytest.raises(OSError, match=r"Could not download.*KERAS_LC_WEIGHTS_URL"):
        weights_lib.fetch(_entry(), cache_dir=tmp_path / "c", base_url=url)
    assert _cache_files(tmp_path / "c") == []


def test_no_download_location(tmp_path, monkeypatch):
    monkeypatch.delenv("KERAS_LC_WEIGHTS_URL", raising=False)
    with pytest.raises(ValueError, match=r"not shipped with this installation.*KERAS_LC_WEIGHTS_URL"):
        weights_lib.fetch(_entry(), cache_dir=tmp_path)


def test_no_top_file(server, tmp_path):
    _, url, root = server
    (root / "tiny_notop.weights.h5").write_bytes(PAYLOAD[:100])
    entry = _entry(notop_file_name="tiny_notop.weights.h5", notop_sha256=hashlib.sha256(PAYLOAD[:100]).hexdigest())
    assert entry.file() == ("tiny.weights.h5", _entry().sha256)
    assert entry.file(include_top=False) == ("tiny_notop.weights.h5", entry.notop_sha256)
    path = weights_lib.fetch(entry, cache_dir=tmp_path, base_url=url, include_top=False)
    assert path.name == "tiny_notop.weights.h5" and path.read_bytes() == PAYLOAD[:100]
    with pytest.raises(ValueError, match=r"no no-top file.*include_top=False"):
        weights_lib.fetch(_entry(), cache_dir=tmp_path, base_url=url, include_top=False)


def test_manifest_url_is_the_base_and_a_mirror_wins(server, tmp_path, monkeypatch):
    _, url, _ = server
    monkeypatch.delenv("KERAS_LC_WEIGHTS_URL", raising=False)
    assert _entry(url="http://unreachable.invalid/w").download_url() == "http://unreachable.invalid/w/tiny.weights.h5"
    monkeypatch.setenv("KERAS_LC_WEIGHTS_URL", url)
    path = weights_lib.fetch(_entry(url="http://unreachable.invalid/w"), cache_dir=tmp_path)
    assert path.read_bytes() == PAYLOAD


def test_manifest_round_trip_and_errors(tmp_path):
    entry = _entry()
    (tmp_path / "manifest.json").write_text(entry.to_json())
    assert PretrainedWeights.from_json(tmp_path / "manifest.json") == entry
    keys = list(json.loads(entry.to_json()))  # sorted: a re-export changes only what changed
    assert keys == sorted(keys) and keys[:3] == ["builder", "class_names", "classes"]
    assert entry.to_json().splitlines()[1] == '  "builder": null,' and entry.to_json().endswith("}\n")
    (tmp_path / "bad.json").write_text('{"name": "x", "colour": "red"}')
    with pytest.raises(ValueError, match=r"missing fields \['classes'.*unknown fields \['colour'\]"):
        PretrainedWeights.from_json(tmp_path / "bad.json")


# ------------------------------------------------------------ broken manifests
@pytest.fixture
def scratch_zoo(tmp_path, monkeypatch):
    """An empty $KERAS_LC_ZOO (searched before the package's own) and a scratch cache."""
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    monkeypatch.setenv("KERAS_LC_ZOO", str(zoo))
    monkeypatch.setenv("KERAS_LC_CACHE", str(tmp_path / "cache"))
    return zoo


def _broken(zoo, name, text):
    (zoo / name).mkdir(parents=True)
    path = zoo / name / "manifest.json"
    path.write_text(text)
    return path


def test_broken_unrelated_manifest_is_skipped_with_a_warning(scratch_zoo):
    from keras_lc.zoo.pretrained import pretrained_weights

    shipped = set(weights_lib.published_weights())
    assert "resnet20_16_cifar10" in shipped
    invalid = _broken(scratch_zoo, "mine_a", '{"name": "mine_a", ')  # invalid JSON
    partial = _broken(scratch_zoo, "mine_b", '{"name": "mine_b", "model": "vgg"}')  # missing fields
    with pytest.warns(weights_lib.ManifestWarning) as caught:
        assert set(weights_lib.published_weights(requested="resnet20")) == shipped
    messages = [str(w.message) for w in caught if issubclass(w.category, weights_lib.ManifestWarning)]
    assert len(messages) == 2
    assert {w.filename for w in caught} == {__file__}  # attributed to the caller, not to keras_lc
    assert f"Manifest '{invalid}' is not valid JSON (Expecting property name" in messages[0]
    assert f"Manifest '{partial}' does not describe published weights: missing fields ['classes'" \
        in messages[1]
    assert all(f"it is in KERAS_LC_ZOO='{scratch_zoo}': fix or remove that file" in m for m in messages)
    assert not any("reinstall" in m for m in messages)
    with pytest.warns(weights_lib.ManifestWarning):  # what every weights= call goes through
        assert sorted(pretrained_weights("resnet20")) == ["cifar10"]


@pytest.mark.parametrize("requested", ["mine_a", "renamed", "resnet_lc20"])
def test_broken_requested_manifest_raises_naming_the_file(scratch_zoo, requested):
    path = _broken(scratch_zoo, "mine_a", '{"name": "renamed", "model": "resnet_lc20", "classes": "ten"}')
    with pytest.raises(weights_lib.ManifestError) as error:
        weights_lib.published_weights(requested=requested)
    message = str(error.value)
    assert message.startswith(f"Manifest '{path}' does not describe published weights: missing fields [")
    advice = f"it is in KERAS_LC_ZOO='{scratch_zoo}': fix or remove that file (or re-export the model)."
    assert message.endswith(advice)
    assert "\n" not in message


def test_manifest_errors_name_the_file_and_each_problem(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_LC_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("KERAS_LC_ZOO", raising=False)
    cases = {
        "not_json.json": ("{'single': 'quotes'}", r"is not valid JSON \(Expecting property name enclosed "
                          r"in double quotes at line 1 column 2\)"),
        "list.json": ("[1, 2]", r"holds a JSON list, not an object of fields"),
        "types.json": (_entry(classes="ten", top1=None).to_json(), r"has fields of the wrong type: "
                       r"classes='ten' \(expected int\), top1=None \(expected float\)"),
    }
    (tmp_path / "folder.json").mkdir()  # open() raises IsADirectoryError, an OSError
    with pytest.raises(weights_lib.ManifestError, match=r"^Manifest '.*folder.json' cannot be read "
                       r"\(\[Errno 21\] Is a directory: .*\); fix or remove that file\.$"):
        PretrainedWeights.from_json(tmp_path / "folder.json")
    cases["latin1.json"] = (_entry(recipe="cafe").to_json().replace("cafe", "caf\xe9").encode("latin-1"),
                            r"cannot be read \('utf-8' codec can't decode byte 0xe9 in position \d+: invalid continuation byte\)")
    for name, (text, message) in cases.items():
        (tmp_path / name).write_bytes(text if isinstance(text, bytes) else text.encode())
        pattern = rf"^Manifest '.*{name}' {message}; fix or remove that file\.$"
        with pytest.raises(weights_lib.ManifestError, match=pattern):
            PretrainedWeights.from_json(tmp_path / name)


def test_advice_depends_on_where_the_manifest_lies(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_LC_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("KERAS_LC_ZOO", raising=False)
    packaged = tmp_path / "published"
    monkeypatch.setattr(manifest_lib, "PACKAGED_ZOO", packaged)  # stands for the wheel's folder
    path = _broken(packaged, "tiny_cifar10", "{")
    with pytest.raises(weights_lib.ManifestError, match=r"it ships with keras-lc: reinstall keras-lc\.$"):
        weights_lib.published_weights(requested="tiny_cifar10")
    # A weights file that does not match its manifest: the same advice by origin.
    zoo = tmp_path / "zoo"
    (zoo / "tiny_cifar10").mkdir(parents=True)
    (zoo / "tiny_cifar10" / "tiny.weights.h5").write_bytes(PAYLOAD[:10])
    monkeypatch.setenv("KERAS_LC_ZOO", str(zoo))
    pattern = rf"expects {_entry().sha256}; it is in KERAS_LC_ZOO='{zoo}': fix or remove"
    for corrupted in _corruptions(_entry().sha256):  # whichever way its hash sorts
        (zoo / "tiny_cifar10" / "tiny.weights.h5").write_bytes(corrupted)
        with pytest.raises(ValueError, match=pattern):
            weights_lib.fetch(_entry())


def test_location_names_the_folder_of_the_file_it_would_load(tmp_path, monkeypatch):
    """`keras-lc list --pretrained`'s column: where the top (or no-top) file comes from, and its size."""
    monkeypatch.setenv("KERAS_LC_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("KERAS_LC_WEIGHTS_URL", raising=False)
    packaged, zoo = tmp_path / "published", tmp_path / "zoo"
    monkeypatch.setattr(manifest_lib, "PACKAGED_ZOO", packaged)
    monkeypatch.setenv("KERAS_LC_ZOO", str(zoo))
    entry = _entry(notop_file_name="tiny_notop.weights.h5", notop_sha256="0" * 64)
    (zoo / "tiny_cifar10").mkdir(parents=True)
    (zoo / "tiny_cifar10" / "tiny.weights.h5").write_bytes(PAYLOAD)
    (packaged / "tiny_cifar10").mkdir(parents=True)
    (packaged / "tiny_cifar10" / "tiny_notop.weights.h5").write_bytes(PAYLOAD[:100])
    assert weights_lib.location(entry) == ("KERAS_LC_ZOO (tiny_cifar10/)", len(PAYLOAD))
    # the file there matches its manifest (a sha256 computed here, equal but another object): used as is
    assert weights_lib.fetch(entry) == zoo / "tiny_cifar10" / "tiny.weights.h5"
    assert weights_lib.location(entry, include_top=False) == ("shipped with keras-lc (tiny_cifar10/)", 100)
    (zoo / "tiny_cifar10" / "tiny.weights.h5").unlink()
    assert weights_lib.location(entry) == (
        "not shipped here and no download location set (KERAS_LC_WEIGHTS_URL)", None)
    monkeypatch.setenv("KERAS_LC_WEIGHTS_URL", "http://mirror.invalid/w")
    assert weights_lib.location(entry) == ("downloaded from http://mirror.invalid/w/tiny.weights.h5", None)


def test_cache_that_is_a_file_fails_with_one_clear_error(tmp_path, monkeypatch):
    from keras_lc.data import CacheError

    cache = tmp_path / "cache"
    cache.write_text("not a folder")
    monkeypatch.setenv("KERAS_LC_CACHE", str(cache))
    monkeypatch.delenv("KERAS_LC_ZOO", raising=False)
    pattern = rf"^KERAS_LC_CACHE='{cache}' is a file, not a folder; set KERAS_LC_CACHE"
    with pytest.raises(CacheError, match=pattern):
        weights_lib.fetch(_entry(), base_url="http://127.0.0.1:9")
    assert cache.read_text() == "not a folder"
