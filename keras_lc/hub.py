"""Published models on the Hugging Face Hub: `hf://ORG/REPO[@REVISION]`, as keras-hub spells it.

A Hub repository holding a published model has the files of its `zoo/NAME/`
folder at its root (`manifest.json`, the weights files, the folded `.keras`,
the exports, `README.md`), so the same folder works in `zoo/`, in
`$KERAS_LC_ZOO`, in the cache and on the Hub.

- `manifest(hub_id)`: the repository's `PretrainedWeights`;
- `fetch(hub_id, entry, include_top)`: one of its weights files, downloaded
  through `huggingface_hub.hf_hub_download` (its cache, `HF_HUB_OFFLINE`,
  tokens and mirrors via `HF_ENDPOINT` all apply) and verified against the
  manifest's sha256; a file that does not match is removed from the cache
  and refused;
- `push(folder, hub_id)`: uploads a published folder (`HfApi.upload_folder`),
  with the token `huggingface_hub` finds (`HF_TOKEN` or `hf auth login`);
  keras-lc never writes or logs it.

`huggingface_hub` is the optional `hub` extra (`pip install 'keras-lc[hub]'`).
"""

import importlib
import os
import re

from keras_lc.archives import sha256_of
from keras_lc.files import one_line

PREFIX = "hf://"
EXTRA = "pip install 'keras-lc[hub]'"
_HUB_ID = re.compile(r"^hf://([A-Za-z0-9][\w.-]*/[\w.-]+)(?:@([\w./-]+))?$")


def is_hub_id(value):
    """True for a string starting with `hf://` (then `parse` checks the rest)."""
    return isinstance(value, str) and value.startswith(PREFIX)


def parse(hub_id):
    """`(repo_id, revision)` of `hf://ORG/REPO[@REVISION]` (revision `None`: the default branch).

    Example:

    >>> parse("hf://keras-lc/resnet20-cifar10@v1")
    ('keras-lc/resnet20-cifar10', 'v1')
    >>> parse("hf://keras-lc/resnet20-cifar10")
    ('keras-lc/resnet20-cifar10', None)
    """
    match = _HUB_ID.match(hub_id) if isinstance(hub_id, str) else None
    if not match:
        raise ValueError(
            "A Hugging Face Hub model is named hf://ORG/REPO or hf://ORG/REPO@REVISION "
            f"(letters, digits, '-', '_', '.'). Received: {hub_id!r}"
        )
    return match.group(1), match.group(2)


def require_client():
    """`huggingface_hub`, or an `ImportError` naming the extra to install."""
    return _client()


def _client():
    try:
        return importlib.import_module("huggingface_hub")
    except ImportError:
        raise ImportError(f"hf:// models need huggingface_hub, which is not installed: {EXTRA}.") from None


def _download(hub_id, file_name):
    """Local path of `file_name` of the Hub repository `hub_id` (huggingface_hub's cache)."""
    repo_id, revision = parse(hub_id)
    client = _client()
    try:
        return client.hf_hub_download(repo_id, file_name, revision=revision, library_name="keras-lc")
    except Exception as error:  # the client's own errors: missing repo, file, revision, network
        raise OSError(f"Could not get '{file_name}' of {hub_id} from the Hugging Face Hub: "
                      f"{one_line(error)[:300]}") from None


def manifest(hub_id):
    """The `PretrainedWeights` of the published model in the Hub repository `hub_id`."""
    from keras_lc.weights import PretrainedWeights

    return PretrainedWeights.from_json(_download(hub_id, "manifest.json"))


def _forget(path):
    """Removes a downloaded file from huggingface_hub's cache: its snapshot link and its blob."""
    blob = os.path.realpath(path)
    for p in {path, blob}:
        if os.path.lexists(p):
            os.remove(p)


def fetch(hub_id, entry, include_top=True):
    """Local path of `entry`'s weights file (no-top with `include_top=False`) from `hub_id`, verified.

    `entry` is `manifest(hub_id)`. A file whose sha256 is not the manifest's
    is removed from the cache and raises `ValueError`.
    """
    file_name, sha256 = entry.file(include_top)
    path = _download(hub_id, file_name)
    actual = sha256_of(path)
    if actual != sha256:
        _forget(path)
        raise ValueError(
            f"The file '{file_name}' downloaded from {hub_id} has sha256 {actual}, but its manifest "
            f"expects {sha256}: the repository holds a different or corrupted file (it was not kept)."
        )
    return path


def push(folder, hub_id, commit_message=None):
    """Uploads the published folder `folder` (a `zoo/NAME/`) to `hub_id`; returns the commit's URL.

    The repository is created if it does not exist. The token is the one
    `huggingface_hub` finds (`HF_TOKEN`, or a `hf auth login`).
    """
    repo_id, revision = parse(hub_id)
    client = _client()
    api = client.HfApi()
    name = os.path.basename(os.path.normpath(folder))
    try:
        api.create_repo(repo_id, exist_ok=True)
        info = api.upload_folder(repo_id=repo_id, folder_path=os.fspath(folder), revision=revision,
                                 commit_message=commit_message or f"keras-lc export {name}")
    except Exception as error:
        raise OSError(f"Could not upload '{folder}' to {hub_id}: {one_line(error)[:300]}") from None
    return getattr(info, "commit_url", str(info))
