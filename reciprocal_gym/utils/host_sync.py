"""A check, on any device, that code makes no host-synchronizing call: no tensor value read on the host.

On a GPU, reading a tensor's value on the host (``.item()``, ``bool(t)``, ``int(t)``, ``t.tolist()``, ``.numpy()``)
or an op whose output shape depends on tensor values (``nonzero``, indexing by a boolean mask, ``unique``,
``masked_select``) waits for the device to finish: the host cannot run ahead, and the step cannot be captured in a
CUDA graph. ``torch.cuda.set_sync_debug_mode("error")`` catches these on a GPU only; :func:`no_host_sync` catches the
same calls at torch's dispatcher, so a test on the CPU shows that a code path would not synchronize on a GPU. It
also refuses new tensors made from host data (``torch.tensor([...])``, ``torch.as_tensor(array)``): on a GPU they are
a copy from host memory, which synchronizes too. Used by the tests of the envs' sync-free step
(``sync_free=True``); on a CUDA device it also turns on torch's own sync debug mode for the block.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["HostSyncError", "no_host_sync"]


class HostSyncError(RuntimeError):
    """A host-synchronizing call inside a :func:`no_host_sync` block."""


_READS = {
    "aten._local_scalar_dense": "a tensor value read on the host (.item(), bool(), int(), float() or an `if` on a "
                                "tensor)",
    "aten.nonzero": "nonzero (its output size depends on the values)",
    "aten.masked_select": "masked_select (its output size depends on the values)",
    "aten._unique2": "unique (its output size depends on the values)",
    "aten.unique_dim": "unique (its output size depends on the values)",
    "aten.unique_consecutive": "unique_consecutive (its output size depends on the values)",
    "aten.equal": "torch.equal (returns a host bool)",
    "aten.is_nonzero": "a tensor used as a host bool",
    "aten._linalg_check_errors": "a linalg error check (use the *_ex variant)",
    "aten.lift_fresh": "a tensor made from host data (on a GPU a copy from host memory)",
}


def _name(func: Any) -> str:
    return str(func.overloadpacket) if hasattr(func, "overloadpacket") else str(func)


def _bool_index(indices: Any) -> bool:
    return any(isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in indices or ())


class _Detector(TorchDispatchMode):
    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        name = _name(func)
        if name in _READS:
            raise HostSyncError(f"host-synchronizing call {name}: {_READS[name]}")
        if name in ("aten.index", "aten.index_put", "aten.index_put_", "aten._index_put_impl_") and _bool_index(
                args[1] if len(args) > 1 else kwargs.get("indices")):
            raise HostSyncError(f"host-synchronizing call {name} with a boolean mask (the mask's true entries are "
                                "counted on the host): use torch.where or masked_fill")
        if name == "aten.repeat_interleave" and kwargs.get("output_size") is None and isinstance(
                args[0], torch.Tensor) and len(args) < 3:
            raise HostSyncError("host-synchronizing call repeat_interleave with tensor repeats and no output_size")
        if name == "aten.linalg_cholesky_ex" and (kwargs.get("check_errors") or (len(args) > 2 and args[2])):
            raise HostSyncError("host-synchronizing call linalg_cholesky_ex(check_errors=True)")
        return func(*args, **kwargs)


def _refuse(what: str) -> Any:
    def method(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        raise HostSyncError(f"host-synchronizing call Tensor.{what}() (copies the values to the host)")
    return method


@contextmanager
def no_host_sync(device: torch.device | str | None = None) -> Iterator[None]:
    """Raise :class:`HostSyncError` at the first host-synchronizing call inside the block (see the module
    docstring); with a CUDA ``device``, torch's sync debug mode is set to "error" for the block as well.

    Example::

        with no_host_sync():
            env.step(actions)   # raises if the step reads a tensor value on the host
    """
    patched = {name: getattr(torch.Tensor, name) for name in ("numpy", "tolist", "__array__")}
    cuda = device is not None and torch.device(device).type == "cuda"
    previous = torch.cuda.get_sync_debug_mode() if cuda else 0
    try:
        for name in patched:
            setattr(torch.Tensor, name, _refuse(name))
        if cuda:
            torch.cuda.set_sync_debug_mode("error")
        with _Detector():
            yield
    finally:
        for name, method in patched.items():
            setattr(torch.Tensor, name, method)
        if cuda:
            torch.cuda.set_sync_debug_mode(previous)
