"""Files of tensors and plain data that load without running code (no pickle).

A *tree* (nested dicts, lists and tuples of ``None``, bools, ints, floats, strings, torch
tensors and NumPy arrays) is written as one `safetensors <https://huggingface.co/docs/safetensors>`_
file: every tensor and array under a key that spells its path in the tree
(``model_state/blocks.0.weight``), everything else as JSON in the header's metadata, where
each tensor is replaced by ``{"__tensor__": key}`` (``"__ndarray__"`` for a NumPy array),
a tuple by ``{"__tuple__": [...]}`` and a dict with non-string keys by
``{"__items__": [[key, value], ...]}``.

Reading parses the header with the safetensors library (no code in the file can run) and
the metadata with :func:`json.loads`; :func:`read_tree` builds only the types above, so a
crafted file can at worst be refused as malformed. Other tools read the same file with
``safetensors.safe_open(path, "pt")``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["write_tree", "read_tree", "is_safetensors", "TreeFormatError"]

_TREE_KEY = "tree"
_KIND_KEY = "kind"


class TreeFormatError(ValueError):
    """The file is not a tensor tree of the expected kind (malformed, truncated, foreign)."""


def _join(path: str, key: Any) -> str:
    return f"{path}/{key}" if path else str(key)


def _encode(node: Any, path: str, tensors: dict[str, torch.Tensor]) -> Any:
    if node is None or isinstance(node, (bool, str)):
        return node
    if isinstance(node, (int, np.integer)):
        return int(node)
    if isinstance(node, (float, np.floating)):
        return float(node)
    if isinstance(node, (torch.Tensor, np.ndarray)) and path in tensors:
        raise ValueError(f"two tensors would be stored under the key {path!r}")
    if isinstance(node, torch.Tensor):
        # a copy: safetensors refuses tensors that share memory (views, tied weights)
        tensors[path] = node.detach().to("cpu").contiguous().clone()
        return {"__tensor__": path}
    if isinstance(node, np.ndarray):
        if node.dtype == object:
            raise TypeError(f"{path}: object arrays cannot be stored without pickle")
        tensors[path] = torch.from_numpy(np.array(node, copy=True, order="C"))
        return {"__ndarray__": path}
    if isinstance(node, tuple):
        return {"__tuple__": [_encode(v, _join(path, i), tensors) for i, v in enumerate(node)]}
    if isinstance(node, list):
        return [_encode(v, _join(path, i), tensors) for i, v in enumerate(node)]
    if isinstance(node, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in node):
            return {k: _encode(v, _join(path, k), tensors) for k, v in node.items()}
        return {"__items__": [[_encode(k, _join(path, f"{i}.key"), tensors), _encode(v, _join(path, k), tensors)]
                              for i, (k, v) in enumerate(node.items())]}
    raise TypeError(f"{path}: {type(node).__name__} cannot be stored without pickle")


def _decode(node: Any, tensors: Any) -> Any:
    if isinstance(node, list):
        return [_decode(v, tensors) for v in node]
    if not isinstance(node, dict):
        return node
    if set(node) == {"__tensor__"}:
        return tensors.get_tensor(str(node["__tensor__"]))
    if set(node) == {"__ndarray__"}:
        return tensors.get_tensor(str(node["__ndarray__"])).numpy()
    if set(node) == {"__tuple__"}:
        return tuple(_decode(v, tensors) for v in node["__tuple__"])
    if set(node) == {"__items__"}:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in node["__items__"]}
    return {k: _decode(v, tensors) for k, v in node.items()}


def write_tree(path: str | Path, tree: dict[str, Any], kind: str) -> None:
    """Write ``tree`` to ``path`` (not atomically: callers write a temporary and rename it).

    ``kind`` names what the file holds (``"sphere-forecast checkpoint"``); :func:`read_tree`
    refuses a file of another kind.
    """
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    encoded = _encode(tree, "", tensors)
    save_file(tensors, str(path), metadata={_KIND_KEY: kind, _TREE_KEY: json.dumps(encoded)})


def read_tree(path: str | Path, kind: str) -> dict[str, Any]:
    """The tree :func:`write_tree` wrote to ``path``, every tensor on the CPU.

    Raises
    ------
    TreeFormatError
        If ``path`` is not a safetensors file of ``kind`` or its metadata are malformed
        (one line saying what).
    """
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as tensors:
            metadata = tensors.metadata() or {}
            if metadata.get(_KIND_KEY) != kind:
                raise TreeFormatError(f"it holds {metadata.get(_KIND_KEY) or 'no sphere-forecast data'!s:.80}, "
                                      f"not a {kind}")
            tree = _decode(json.loads(metadata.get(_TREE_KEY, "null")), tensors)
    except TreeFormatError:
        raise
    except (SafetensorError, OSError, ValueError, TypeError, KeyError, RuntimeError) as exc:
        text = str(exc).splitlines()[0] if str(exc) else ""
        raise TreeFormatError(f"{type(exc).__name__}: {text[:200]}") from None
    if not isinstance(tree, dict):
        raise TreeFormatError("its metadata hold no mapping")
    return tree


def is_safetensors(path: str | Path) -> bool:
    """Whether ``path`` starts like a safetensors file (8-byte header length, then ``{``)."""
    with open(path, "rb") as handle:
        head = handle.read(9)
    if len(head) < 9 or head[8:9] != b"{":
        return False
    return int.from_bytes(head[:8], "little") <= Path(path).stat().st_size - 8
