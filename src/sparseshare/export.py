"""Export one task's subnet, mask applied, as one safetensors file; rebuild it with :func:`load_subnet`.

The file holds what the task's predictions need and nothing else: the parameters its loss reaches
(``task_parameter_names``: the shared network and the task's own head, not the other tasks'), with every
masked weight matrix stored as its kept values plus a bit per entry, so the file shrinks with the
subnet's density. A JSON header (the safetensors metadata) says how to rebuild the network: a recipe
(``sharing.registry``: a registered network by name and its JSON arguments) or, for a network of your
own, the ``build`` callable you give :func:`load_subnet`. The preprocessing of a run (vocabularies or the
feature encoder) rides along, so an exported tagger can tag text on its own. No pickles anywhere.

The rebuilt module computes with ``M_t ⊙ θ`` baked into its weights: the same numbers the masked
forward of sparse sharing computes, so its predictions equal the run's exactly. Parameters of other
tasks are not stored and are set to NaN on load, so a task that did use one would predict NaN (and the
tests would catch it).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sparseshare.errors import ContractError, RunError
from sparseshare.masks.io import pack_bits, unpack_bits
from sparseshare.nesting import loads as loads_bounded
from sparseshare.sharing.expert_code import Experts
from sparseshare.sharing.hard import HardSharing, task_parameter_names, task_predict
from sparseshare.sharing.registry import RecipeError, UntrustedRecipe, build_recipe, check_recipe
from sparseshare.sharing.sparse import SparseSharing
from sparseshare.training.checkpoint import METADATA_KEY, load_tensors, save_tensors

FORMAT = "sparseshare-subnet"
VERSION = 1
_VALUES, _BITS, _PREPROCESS = "::kept", "::bits", "__preprocess__"


class Subnet(nn.Module):
    """One task's network: ``forward(batch)`` and ``predict(batch)`` as the run computed them.

    ``network`` is the rebuilt module (weights ``M_t ⊙ θ``), ``task`` the task it serves, ``header`` the
    file's header and ``preprocess`` the run's vocabularies or feature encoder (``{}`` when none).
    """

    def __init__(self, network: nn.Module, task: str, header: dict, preprocess: dict | None = None):
        super().__init__()
        self.network, self.task, self.header = network, task, header
        self.preprocess = preprocess or {}

    @property
    def tasks(self) -> list[str]:
        return [self.task]

    def forward(self, batch):
        return self.network(batch, self.task)

    @torch.no_grad()
    def predict(self, batch, task: str | None = None):
        self._check(task)
        return task_predict(self.network, self(batch), batch, self.task)

    def loss(self, batch, task: str | None = None) -> torch.Tensor:
        """The task's loss on ``batch`` (so ``ss.evaluate`` and the mechanism contract take a subnet)."""
        self._check(task)
        own = getattr(self.network, "task_loss", None)
        if not callable(own):
            raise ContractError(f"the network of subnet '{self.task}' has no task_loss(output, batch, task)")
        return own(self(batch), batch, self.task)

    def step(self, optimizer, task: str | None = None) -> None:
        """Refused: a subnet holds M_t ⊙ θ with its pruned weights at zero, and a plain step would bring
        them back; fine-tune through ``ss.SparseSharing`` over the base network and the masks instead."""
        raise ContractError(
            f"subnet '{self.task}' is for prediction: an optimizer step would move its pruned weights; "
            f"train ss.SparseSharing(base, masks) instead"
        )

    def task_parameter_names(self, task: str | None = None) -> list[str]:
        """Every parameter: the subnet serves one task."""
        self._check(task)
        return [n for n, _ in self.named_parameters()]

    def _check(self, task: str | None) -> None:
        if task not in (None, self.task):
            raise ContractError(f"this subnet serves task '{self.task}', not '{task}'")


def _network_and_masks(module: nn.Module, task: str, recipe: Mapping | None):
    """(the module to rebuild, the task's masks over its parameters, the recipe of that module)."""
    recipe = dict(recipe) if recipe is not None else None
    if isinstance(module, SparseSharing):  # sparse sharing and PBFS: the network, masks baked in
        masks = SparseSharing.mask(module, task)
        if recipe is not None:
            recipe = {"network": recipe["network"], "kwargs": recipe.get("kwargs", {})}
        return module.model, {n: m.detach().cpu() for n, m in masks.items()}, recipe
    if isinstance(module, HardSharing):
        if recipe is not None:
            recipe = {"network": recipe["network"], "kwargs": recipe.get("kwargs", {})}
        return module.model, {}, recipe
    return module, {}, recipe


# safetensors' names of the dtypes a subnet file holds (only their lengths count in a size)
_DTYPES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}


def _file_bytes(specs: Mapping[str, tuple[torch.dtype, tuple[int, ...]]], header: Mapping) -> int:
    """The size of the file ``save_tensors`` writes for tensors of these (dtype, shape) and this header:
    8 bytes of header length, the JSON index (tensors by falling element size, then name) padded to 8,
    the data."""
    index: dict[str, Any] = {"__metadata__": {METADATA_KEY: json.dumps(header, sort_keys=True)}}
    start = 0
    for name in sorted(specs, key=lambda n: (-specs[n][0].itemsize, n)):
        dtype, shape = specs[name]
        end = start + math.prod(shape) * dtype.itemsize
        index[name] = {
            "dtype": _DTYPES.get(dtype, str(dtype)),
            "shape": list(shape),
            "data_offsets": [start, end],
        }
        start = end
    text = json.dumps(index, separators=(",", ":"), ensure_ascii=False).encode()
    return 8 + len(text) + -len(text) % 8 + start


def _spec(t: torch.Tensor) -> tuple[torch.dtype, tuple[int, ...]]:
    return t.dtype, tuple(t.shape)


def export_subnet(
    module: nn.Module,
    task: str,
    path: str | Path,
    *,
    recipe: Mapping[str, Any] | None = None,
    preprocess: Mapping[str, Any] | None = None,
    meta: Mapping[str, Any] | None = None,
) -> dict:
    """Write ``task``'s subnet of ``module`` (a mechanism or a network) to ``path``; return its sizes.

    ``recipe``: how to rebuild the module (a registered network, see ``sharing.registry``); without one,
    :func:`load_subnet` needs ``build``. Returns, in bytes and counts:

    * ``bytes``: the size of the file written.
    * ``dense_bytes``: the size of the same file with nothing masked: the same parameters, buffers,
      preprocessing and header, each masked matrix stored whole instead of as its kept values plus a bit
      per entry (the file an export of the bare network with these weights writes, to the byte). So
      ``bytes / dense_bytes`` compares like with like: exactly 1 without masks (hard sharing, a plain
      network); below 1 once a masked float32 matrix keeps less than about 31/32 of its entries (float16:
      15/16); at density 1.0 above 1 by the bits alone, at most ``1/32`` for float32 matrices (a bit
      against 32 per entry; 1/16 for float16), and some 100 header bytes per masked matrix.
    * ``parameter_bytes`` and ``dense_parameter_bytes``: the exported parameters alone, as stored (kept
      values and bits, unmasked parameters whole) and dense (entries × element size), over the same
      parameters; buffers, preprocessing and header left out.
    * ``density``: the kept fraction of the masked weights (1.0 without masks); ``kept`` and ``masked``:
      their counts.
    """
    if task not in module.tasks:
        raise ContractError(f"no task '{task}' in this model; its tasks are {list(module.tasks)}")
    network, masks, recipe = _network_and_masks(module, task, recipe)
    params = dict(network.named_parameters())
    names = [n for n in task_parameter_names(network, task) if n in params]
    tensors: dict[str, torch.Tensor] = {}
    dense: dict[str, tuple[torch.dtype, tuple[int, ...]]] = {}  # the same file with nothing masked
    stored_bytes, dense_bytes, kept, masked = 0, 0, 0, 0
    for n in names:
        p = params[n].detach().cpu()
        dense[n] = _spec(p)
        dense_bytes += p.numel() * p.element_size()
        m = masks.get(n)
        if m is None:
            tensors[n] = p
            stored_bytes += p.numel() * p.element_size()
            continue
        tensors[n + _VALUES] = p[m]
        tensors[n + _BITS] = torch.from_numpy(pack_bits(m))
        stored_bytes += sum(t.numel() * t.element_size() for t in (tensors[n + _VALUES], tensors[n + _BITS]))
        kept, masked = kept + int(m.sum()), masked + m.numel()
    for n, b in network.named_buffers():
        tensors[n] = b.detach().cpu()
        dense[n] = _spec(tensors[n])
    if preprocess:
        raw = json.dumps(preprocess, sort_keys=True).encode()
        tensors[_PREPROCESS] = torch.frombuffer(bytearray(raw), dtype=torch.uint8)
        dense[_PREPROCESS] = _spec(tensors[_PREPROCESS])
    header = {
        "format": FORMAT,
        "version": VERSION,
        "task": task,
        "recipe": recipe,
        "parameters": names,
        "masked": {n: list(masks[n].shape) for n in names if n in masks},
        "density": kept / masked if masked else 1.0,
        **({"meta": dict(meta)} if meta else {}),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_tensors(tensors, path, header)
    size = path.stat().st_size
    # the dense file's size: this file's, less what the masks change (computed the same way both sides,
    # so a change in how safetensors lays out its header cancels out)
    written = {n: _spec(t) for n, t in tensors.items()}
    dense_header = {**header, "masked": {}, "density": 1.0}
    dense_file = (
        size + _file_bytes(dense, dense_header) - _file_bytes(written, header) if header["masked"] else size
    )
    return {
        "bytes": size,
        "dense_bytes": dense_file,
        "density": header["density"],
        "kept": kept,
        "masked": masked,
        "parameter_bytes": stored_bytes,
        "dense_parameter_bytes": dense_bytes,
    }


def _stored_shapes(path: Path, tensors: Mapping[str, torch.Tensor], header: Mapping) -> dict:
    """The shape each stored parameter and buffer has, once unpacked, checked against the header: the
    parameters it lists are there, a masked one's kept values and bits agree with its shape, each
    tensor has a float (parameters) dtype; a one-line RunError names what disagrees."""
    names, masked, task = header.get("parameters"), header.get("masked", {}), header.get("task")
    if not isinstance(task, str):
        raise RunError(f"{path}: header 'task' is {task!r:.40}, not a task name")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise RunError(f"{path}: header 'parameters' is not a list of names")
    if not isinstance(masked, dict):
        raise RunError(f"{path}: header 'masked' is not a mapping of name to shape")
    shapes = {n: tuple(t.shape) for n, t in tensors.items() if n != _PREPROCESS and "::" not in n}
    if _PREPROCESS in tensors and tensors[_PREPROCESS].dtype != torch.uint8:
        raise RunError(f"{path}: '{_PREPROCESS}' is {tensors[_PREPROCESS].dtype}, not uint8")
    for n in names:
        if n in masked:
            shape, values, bits = masked[n], tensors.get(n + _VALUES), tensors.get(n + _BITS)
            if not isinstance(shape, list) or not all(
                isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 2**31 for d in shape
            ):
                raise RunError(f"{path}: header 'masked.{n}' is not a shape (a list of sizes)")
            if values is None or bits is None:
                raise RunError(f"{path}: masked parameter '{n}' has no kept values or bits stored")
            if bits.dtype != torch.uint8 or bits.numel() * 8 < math.prod(shape) or bits.dim() != 1:
                raise RunError(f"{path}: the bits of '{n}' do not cover its shape {shape}")
            tensor = values
            shapes[n] = tuple(shape)
        elif n in tensors:
            tensor = tensors[n]
        else:
            raise RunError(f"{path}: parameter '{n}' is listed in the header but not stored")
        if not tensor.is_floating_point():
            raise RunError(f"{path}: parameter '{n}' is stored as {tensor.dtype}, not a float dtype")
    return shapes


def load_subnet(
    path: str | Path,
    *,
    build: Callable[..., nn.Module] | None = None,
    device: str | torch.device = "cpu",
    experts: Experts | None = None,
) -> Subnet:
    """Rebuild the module :func:`export_subnet` wrote: from its recipe, or with ``build(**kwargs)`` (your
    own network; ``kwargs`` from the recipe when there is one, else none). A recipe whose experts are a
    factory it names (``"package.module:factory"``, a config's 'tabular.expert') needs ``experts``: the
    factory by that name (``{"package.module:factory": factory}``) or ``import_expert`` to import what
    the file names (its module's code runs); without it, a one-line refusal."""
    path = Path(path)
    tensors, header = load_tensors(path)
    if header.get("format") != FORMAT:
        raise RunError(f"{path}: not a sparseshare subnet file (format {header.get('format')!r:.60})")
    version = header.get("version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise RunError(f"{path}: header 'version' is {version!r:.40}, not an integer: not a subnet file")
    if version > VERSION:
        raise RunError(f"{path}: written by a newer sparseshare (subnet format {version})")
    shapes = _stored_shapes(path, tensors, header)
    recipe = header.get("recipe")
    if build is not None:
        kwargs = (recipe or {}).get("kwargs", {}) if isinstance(recipe, dict | None) else None
        if not isinstance(kwargs, dict):
            raise RunError(f"{path}: header 'recipe' is not a mapping with a 'kwargs' mapping")
        network = build(**kwargs)
    elif recipe is None:
        raise ContractError(f"{path}: exported without a recipe; give load_subnet(..., build=your_factory)")
    else:
        try:  # sizes first, on the meta device: a crafted recipe must not set what we allocate
            check_recipe(recipe, shapes, experts)
        except UntrustedRecipe as e:
            raise RunError(f"{path}: {e}") from None
        except RecipeError as e:
            raise RunError(f"{path}: header {e}; not a subnet this sparseshare can rebuild") from None
        network = build_recipe(recipe, experts)
    state = network.state_dict()
    with torch.no_grad():
        for v in state.values():  # what the file does not hold must not be used: NaN shows it if it is
            if v.is_floating_point():
                v.fill_(float("nan"))
    masked = header.get("masked", {})
    for n in header["parameters"]:
        if n not in state:
            raise RunError(f"{path}: parameter '{n}' is not in the rebuilt network (another network?)")
        if shapes[n] != tuple(state[n].shape):
            raise RunError(
                f"{path}: '{n}' is stored as {list(shapes[n])}, the network has {list(state[n].shape)}"
            )
        if n in masked:
            m = unpack_bits(tensors[n + _BITS].numpy(), masked[n])
            if int(m.sum()) != tensors[n + _VALUES].numel():
                raise RunError(
                    f"{path}: '{n}' stores {tensors[n + _VALUES].numel()} kept values, "
                    f"its bits keep {int(m.sum())}"
                )
            full = torch.zeros(masked[n], dtype=state[n].dtype)
            full[m] = tensors[n + _VALUES].to(state[n].dtype)
            state[n].copy_(full)
        else:
            state[n].copy_(tensors[n])
    for n, _ in network.named_buffers():
        if n in tensors and n in state:  # non-persistent buffers (HF position_ids) are rebuilt
            if tensors[n].shape != state[n].shape:
                raise RunError(
                    f"{path}: buffer '{n}' is stored as {list(tensors[n].shape)}, "
                    f"the network has {list(state[n].shape)}"
                )
            state[n].copy_(tensors[n])
    preprocess = None
    if _PREPROCESS in tensors:
        try:
            preprocess = loads_bounded(bytes(tensors[_PREPROCESS].numpy().astype(np.uint8)).decode())
        except (ValueError, RecursionError) as e:
            raise RunError(
                f"{path}: its preprocessing is not valid JSON ({str(e).splitlines()[0]:.80})"
            ) from None
        if not isinstance(preprocess, dict):
            raise RunError(f"{path}: its preprocessing is a JSON {type(preprocess).__name__}, not an object")
    sub = Subnet(network, header["task"], header, preprocess)
    return sub.to(device).eval()
