"""What the runtime measures in the student process, with torch as it was before student code ran.

Gradients and in-place changes of the arguments are measured inside the
student process, where student code can rebind anything it can reach
(``torch.autograd.grad``, ``torch.Tensor.clone``, ``builtins.isinstance``,
this runtime's own functions). This module keeps references taken when the
runtime is imported in the zygote, before any fork and any student code:

* the measurements use only those references: the C engine's
  ``run_backward``, C-level ``torch._C.TensorBase`` methods and descriptors
  (an immutable type: not even student code can rebind them without ctypes);
* :class:`Snapshot` records the module attributes, function code and the
  globals and builtins they look up, and :meth:`Snapshot.verify` refuses to
  measure (:class:`Tampered`, one clear reason) when any of them changed.

In-place changes are judged on private state only: the version counter,
storage pointer, layout and an immutable ``bytes`` copy of every argument
tensor, taken before the call. The limit is honest: code that rewrites memory
(ctypes) can defeat any in-process measurement.
"""

from __future__ import annotations

import builtins
import itertools
import operator
import sys
import types
from typing import Any, Iterator, NamedTuple

import torch

_TB = torch._C.TensorBase
_DETACH, _CONTIGUOUS, _RESHAPE, _VIEW, _NUMPY, _TO = (
    _TB.detach, _TB.contiguous, _TB.reshape, _TB.view, _TB.numpy, _TB.to)
_DATA_PTR, _STRIDE, _STORAGE_OFFSET = _TB.data_ptr, _TB.stride, _TB.storage_offset
_VERSION = _TB.__dict__["_version"].__get__
_REQUIRES_GRAD = _TB.__dict__["requires_grad"].__get__
_SHAPE = _TB.__dict__["shape"].__get__
_DTYPE = _TB.__dict__["dtype"].__get__
_TOBYTES = type(_NUMPY(torch.zeros(1))).tobytes
_ONES_LIKE = torch._C._VariableFunctions.ones_like
_RUN_BACKWARD = torch.autograd.variable.Variable._execution_engine.run_backward
_DISPATCH_MODES = torch._C._len_torch_dispatch_stack
_SAVED_TENSOR_HOOKS = torch._C._autograd._top_saved_tensors_default_hooks
_UINT8 = torch.uint8
_NO_TORCH_FUNCTION = torch._C.DisableTorchFunction
# builtins as they were: student code may rebind ``builtins.*``, the guard keeps using these
_type, _issubclass, _isinstance, _len, _all, _any, _zip, _vars, _getattr = (
    type, issubclass, isinstance, len, all, any, zip, vars, getattr)
_tuple_item, _list_item, _tuple_len, _list_len, _dict_values = (
    tuple.__getitem__, list.__getitem__, tuple.__len__, list.__len__, dict.values)
_BUILTINS, _MODULES = vars(builtins), sys.modules
_map, _is, _repeat, _dict_get = map, operator.is_, itertools.repeat, dict.get
_CODE, _DEFAULTS, _KWDEFAULTS, _CONTENTS = (
    operator.attrgetter(a) for a in ("__code__", "__defaults__", "__kwdefaults__", "cell_contents"))

#: The torch API a student would patch to fake a measurement (checked by name in every verify).
WATCHED = (
    "torch.Tensor", "torch._C.TensorBase", "torch._C.DisableTorchFunction", "torch.autograd.grad",
    "torch.autograd.backward", "torch.autograd.graph._engine_run_backward",
    "torch.autograd.variable.Variable._execution_engine", "torch.ones_like",
)
GRADIENTS = "gradients cannot be measured"
ARGUMENTS = "in-place changes to the arguments cannot be measured"
_MISSING = object()


class Tampered(Exception):
    """Student code changed what a measurement relies on; the measurement (and its check) fails."""


class Before(NamedTuple):
    """One argument tensor as it was before the call (a tuple: student code cannot rewrite its fields)."""

    tensor: torch.Tensor
    version: int
    pointer: int
    layout: tuple[Any, ...]
    data: bytes


def is_tensor(value: Any) -> bool:
    """Whether ``value`` is a tensor (by its real type, never ``isinstance`` or ``__class__``)."""
    return _issubclass(_type(value), _TB)


def _layout(t: torch.Tensor) -> tuple[Any, ...]:
    return tuple(_SHAPE(t)), _STRIDE(t), _STORAGE_OFFSET(t), _DTYPE(t)


def _bytes(t: torch.Tensor) -> bytes:
    flat = _RESHAPE(_CONTIGUOUS(_DETACH(t)), (-1,))
    return _TOBYTES(_NUMPY(_VIEW(flat, _UINT8)))


def before(t: torch.Tensor) -> Before:
    """Record ``t`` before the student's function sees it."""
    with _NO_TORCH_FUNCTION():
        return Before(t, _VERSION(t), _DATA_PTR(t), _layout(t), _bytes(t))


def change(b: Before) -> str | None:
    """How the tensor of ``b`` was modified since, or ``None`` when it was not."""
    t = b.tensor
    with _NO_TORCH_FUNCTION():
        if _DATA_PTR(t) != b.pointer:
            return "its storage was replaced (.data = … or set_)"
        if _layout(t) != b.layout:
            return "its shape, strides or dtype were changed in place"
        if _VERSION(t) != b.version:
            return f"it was written in place ({_VERSION(t) - b.version} in-place operation(s))"
        if _bytes(t) != b.data:
            return "its values were changed in place"
    return None


def tensors_in(value: Any, depth: int = 0) -> Iterator[torch.Tensor]:
    """The tensors inside an argument (itself, or in plain tuples, lists and dicts)."""
    kind = _type(value)
    if _issubclass(kind, _TB):
        yield value
    elif depth < 8 and kind in (tuple, list, dict):
        items = _dict_values(value) if kind is dict else value
        for v in items:
            yield from tensors_in(v, depth + 1)


def item(value: Any, index: int | None) -> Any:
    """``value[index]`` through the real tuple or list (a subclass's ``__getitem__`` is not asked)."""
    if index is None:
        return value
    kind = _type(value)
    if _issubclass(kind, tuple) and 0 <= index < _tuple_len(value):
        return _tuple_item(value, index)
    if _issubclass(kind, list) and 0 <= index < _list_len(value):
        return _list_item(value, index)
    raise TypeError(f"the result has no output {index} (a tuple or list was expected)")


def plain(value: Any) -> Any:
    """A tuple or list subclass as the plain sequence of its real items (what gradients are taken of)."""
    kind = _type(value)
    if kind is not tuple and _issubclass(kind, tuple):
        return tuple([_tuple_item(value, i) for i in range(_tuple_len(value))])
    if kind is not list and _issubclass(kind, list):
        return [_list_item(value, i) for i in range(_list_len(value))]
    return value


def gradients(out: Any, inputs: tuple[torch.Tensor, ...], cotangent: torch.Tensor | None) -> tuple[Any, ...]:
    """d⟨out, cotangent⟩ / d inputs by the C autograd engine (``None`` where no gradient flows)."""
    if not is_tensor(out) or not _REQUIRES_GRAD(out):
        return (None,) * _len(inputs)
    with _NO_TORCH_FUNCTION():
        cot = _ONES_LIKE(out) if cotangent is None else _TO(cotangent, _DTYPE(out))
        if tuple(_SHAPE(cot)) != tuple(_SHAPE(out)):
            raise ValueError(f"the output has shape {tuple(_SHAPE(out))}, the gradient request {tuple(_SHAPE(cot))}")
        return _RUN_BACKWARD((out,), (cot,), True, False, inputs, True, False)


def _resolve(dotted: str) -> Any:
    head, *rest = dotted.split(".")
    value: Any = _MODULES.get(head, _MISSING)
    for name in rest:
        value = _getattr(value, name, _MISSING)
    return value


def _names(code: types.CodeType) -> tuple[str, ...]:
    """Every global or attribute name ``code`` and its nested functions look up."""
    names = list(code.co_names)
    for const in code.co_consts:
        if _type(const) is types.CodeType:
            names.extend(_names(const))
    return tuple(names)


def _looked_up(fn: types.FunctionType, names: tuple[str, ...]) -> tuple[Any, ...]:
    space = fn.__globals__
    return tuple([space.get(n, _BUILTINS.get(n, _MISSING)) for n in names])


def _cells(fn: types.FunctionType) -> tuple[Any, ...]:
    out = []
    for cell in fn.__closure__ or ():
        try:
            out.append(cell.cell_contents)
        except ValueError:  # an empty cell
            out.append(_MISSING)
    return tuple(out)


class _State(NamedTuple):
    """What a patch of a Python function would change: its code, defaults, closure and the names it looks up."""

    code: types.CodeType
    defaults: Any
    kwdefaults: Any
    cells: tuple[Any, ...]
    names: tuple[str, ...]
    looked_up: tuple[Any, ...]


def _state(fn: types.FunctionType) -> _State:
    names = _names(fn.__code__)
    return _State(fn.__code__, fn.__defaults__, fn.__kwdefaults__, _cells(fn), names, _looked_up(fn, names))


def _same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    return _len(a) == _len(b) and _all([x is y for x, y in _zip(a, b)])


def _change(name: str, fn: types.FunctionType, s: _State) -> str | None:
    """What changed in ``fn`` since ``s`` was taken, described; ``None`` if nothing did."""
    if not (fn.__code__ is s.code and fn.__defaults__ is s.defaults and fn.__kwdefaults__ is s.kwdefaults
            and _same(_cells(fn), s.cells)):
        return f"{name} was rewritten (its code, defaults or closure)"
    now = _looked_up(fn, s.names)
    for looked, was, now_value in _zip(s.names, s.looked_up, now):
        if was is not now_value:
            owner = fn.__globals__.get("__name__", "?") if looked in fn.__globals__ else "builtins"
            return f"{owner}.{looked} was replaced"
    return None


def _functions(owner: Any) -> Iterator[tuple[str, types.FunctionType]]:
    """The Python functions defined in a module's or class's namespace (methods unwrapped)."""
    for name, value in list(_vars(owner).items()):
        if _isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if _isinstance(value, property):
            value = value.fget
        if _type(value) is types.FunctionType:
            yield name, value


class _Fingerprint(NamedTuple):
    """What :meth:`Snapshot.first_change` compares, flat, so that C-level passes compare it all.

    Stricter than ``first_change``: a namespace must keep its very keys (dunder
    ones too), and a name a function looks up must be the same in its globals
    and, where the globals lacked it, in ``builtins``. A name other than a dunder
    in the globals of a namespace compared (a runtime module) is not looked up
    again: the same keys and entries imply it.
    """

    spaces: tuple[tuple[Any, frozenset[str], tuple[str, ...], tuple[Any, ...]], ...]  # namespace, keys, entries
    functions: tuple[types.FunctionType, ...]
    codes: tuple[Any, ...]
    defaults: tuple[Any, ...]
    kwdefaults: tuple[Any, ...]
    cells: tuple[Any, ...]
    contents: tuple[Any, ...]
    lookups: tuple[dict[str, Any], ...]  # where each looked-up name is found (deduplicated), and what it was
    names: tuple[str, ...]
    values: tuple[Any, ...]

    @classmethod
    def of(cls, spaces: list[tuple[str, Any, dict[str, Any]]],
           functions: list[tuple[str, types.FunctionType, _State]]) -> _Fingerprint:
        space_keys = tuple((_vars(owner), frozenset(_vars(owner)), tuple(entries), tuple(entries.values()))
                           for _, owner, entries in spaces)
        fns = [fn for _, fn, _ in functions]
        states = [state for _, _, state in functions]
        cells = [cell for fn in fns for cell in fn.__closure__ or ()]
        kept = {id(space) for space, _, _, _ in space_keys}  # their keys and entries are compared already
        lookups: dict[tuple[int, str], tuple[dict[str, Any], str, Any]] = {}
        for fn, state in _zip(fns, states):
            for name in state.names:
                space = fn.__globals__
                if id(space) not in kept or name.startswith("__"):
                    lookups[(id(space), name)] = (space, name, space.get(name, _MISSING))
                if name not in space:
                    lookups[(id(_BUILTINS), name)] = (_BUILTINS, name, _BUILTINS.get(name, _MISSING))
        where, names, values = _zip(*lookups.values()) if lookups else ((), (), ())
        return cls(space_keys, tuple(fns), tuple(s.code for s in states), tuple(s.defaults for s in states),
                   tuple(s.kwdefaults for s in states), tuple(cells), tuple(s for st in states for s in st.cells),
                   tuple(where), tuple(names), tuple(values))

    def holds(self) -> bool:
        """Whether every namespace, function and looked-up name is as it was."""
        return (_all([space.keys() == keys and _all_same(_map(space.get, entries, _repeat(_MISSING)), values)
                      for space, keys, entries, values in self.spaces])
                and _all_same(_map(_CODE, self.functions), self.codes)
                and _all_same(_map(_DEFAULTS, self.functions), self.defaults)
                and _all_same(_map(_KWDEFAULTS, self.functions), self.kwdefaults)
                and _all_same(_map(_CONTENTS, self.cells), self.contents)
                and _all_same(_map(_dict_get, self.lookups, self.names, _repeat(_MISSING)), self.values))


def _all_same(got: Iterator[Any], was: tuple[Any, ...]) -> bool:
    """Whether ``got`` yields the very objects of ``was``, in order."""
    return _all(_map(_is, got, was))


class Snapshot:
    """The runtime's modules, their classes and functions, and the watched torch API, as of now."""

    def __init__(self, modules: tuple[types.ModuleType, ...]) -> None:
        self._spaces: list[tuple[str, Any, dict[str, Any]]] = []
        self._functions: list[tuple[str, types.FunctionType, _State]] = []
        for module in modules:
            short = module.__name__.rsplit(".", 1)[-1]
            self._add_space(short, module)
            for name, value in list(vars(module).items()):
                if isinstance(value, type) and value.__module__ == module.__name__:
                    self._add_space(f"{short}.{name}", value)
        self._watched = tuple((name, _resolve(name)) for name in WATCHED)
        self._add_space("torch.Tensor", torch.Tensor, functions=False)
        for name, value in self._watched:
            if _type(value) is types.FunctionType:
                self._functions.append((name, value, _state(value)))
        self._fingerprint = _Fingerprint.of(self._spaces, self._functions)

    def _add_space(self, label: str, owner: Any, functions: bool = True) -> None:
        self._spaces.append((label, owner, {k: v for k, v in vars(owner).items() if not k.startswith("__")}))
        if functions:
            for name, fn in _functions(owner):
                self._functions.append((f"{label}.{name}", fn, _state(fn)))

    def first_change(self) -> str | None:
        """The first thing student code replaced, added or rewrote, described; ``None`` if untouched."""
        for name, value in self._watched:
            if _resolve(name) is not value:
                return f"{name} was replaced"
        for label, owner, entries in self._spaces:
            current = _vars(owner)
            for key, value in entries.items():
                if current.get(key, _MISSING) is not value:
                    return f"{label}.{key} was replaced"
            for key in current:
                if key not in entries and not key.startswith("__"):
                    inherited = _isinstance(owner, type) and _any([key in _vars(b) for b in owner.__mro__[1:]])
                    return f"{label}.{key} was {'replaced' if inherited else 'added'}"
        for name, fn, state in self._functions:
            found = _change(name, fn, state)
            if found is not None:
                return found
        if _DISPATCH_MODES():
            return "a torch dispatch mode was left active"
        if _SAVED_TENSOR_HOOKS(False) is not None:
            return "saved-tensor hooks were left installed"
        return None

    def unchanged(self) -> bool:
        """Whether nothing :meth:`first_change` looks at changed, by a stricter test at a fraction of its cost
        (False may still be no change: ``first_change`` says)."""
        try:
            return (_all([_resolve(name) is value for name, value in self._watched])
                    and self._fingerprint.holds() and not _DISPATCH_MODES() and _SAVED_TENSOR_HOOKS(False) is None)
        except Exception:  # noqa: BLE001 - an emptied closure cell, a hostile module __getattr__: first_change says
            return False

    def verify(self, purpose: str) -> None:
        """Raise :class:`Tampered` naming what student code changed and what cannot be measured."""
        found = None if self.unchanged() else self.first_change()
        if found is not None:
            raise Tampered(f"{found} by student code; {purpose}")
