"""Matrix-product FLOPs of a JAX function, counted from its jaxpr: what a step asks of the
hardware's matrix units, to set against the measured matmul peak.

Counts ``dot_general`` (2 x output elements x contracted size) and ``conv_general_dilated``
(2 x output elements x kernel elements per output feature, i.e. spatial size x input features
per group), the operations that dominate a VAE step; elementwise work is not counted. Nested
jaxprs (jit, custom derivatives, remat, cond branches at their largest) are followed, and a
``scan`` counts its body ``length`` times; a ``while`` loop's trip count is unknown, so its body
counts once. Each FLOP is attributed to the Flax module it was computed in (the first names of
its name stack, which Flax sets for every module call), so a profile can show where they go.
"""

from __future__ import annotations

import collections
import math

import jax
from jax.extend import core as jex_core


def _dot_flops(eqn) -> int:
    (lhs_contracting, _), _ = eqn.params["dimension_numbers"]
    lhs = eqn.invars[0].aval.shape
    contracted = math.prod(lhs[d] for d in lhs_contracting)
    return 2 * math.prod(eqn.outvars[0].aval.shape) * contracted


def _conv_flops(eqn) -> int:
    kernel = eqn.invars[1].aval.shape
    out_feature_dim = eqn.params["dimension_numbers"].rhs_spec[0]
    per_output = math.prod(kernel) // kernel[out_feature_dim]  # spatial x input features per group
    return 2 * math.prod(eqn.outvars[0].aval.shape) * per_output


def _module_names(eqn) -> tuple[str, ...]:
    """The module names of ``eqn``'s name stack. Autodiff wraps the outermost one (the method
    that was called) in ``jvp(...)``/``transpose(...)``: left out when module names follow it,
    unwrapped when nothing else names the scope (e.g. a method's own arithmetic)."""
    names = [n for n in str(eqn.source_info.name_stack).split("/") if n]
    wrapper = ("jvp(", "transpose(")
    modules = tuple(n for n in names if not n.startswith(wrapper))
    if modules:
        return modules
    unwrapped = (n.replace("transpose(", "").replace("jvp(", "").rstrip(")") for n in names)
    return tuple(n for n in unwrapped if n)


def _scope(names: tuple[str, ...], depth: int) -> str:
    return "/".join(names[:depth]) or "(outside modules)"


def _sub_jaxprs(eqn):
    for value in eqn.params.values():
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            if isinstance(v, jex_core.ClosedJaxpr):
                yield v.jaxpr
            elif isinstance(v, jex_core.Jaxpr):
                yield v


def _count(
    jaxpr, multiplier: int, totals: collections.Counter, kinds: collections.Counter, depth: int, outer=()
) -> None:
    """Adds ``jaxpr``'s FLOPs (times ``multiplier``) to ``totals`` by scope and ``kinds`` by
    primitive. ``outer``: the module names of the equation that holds ``jaxpr``; they come first,
    since the name stacks inside a nested jaxpr (e.g. a custom derivative's) can be relative."""
    for eqn in jaxpr.eqns:
        names = outer + _module_names(eqn)
        name = eqn.primitive.name
        if name == "dot_general":
            flops = _dot_flops(eqn)
        elif name == "conv_general_dilated":
            flops = _conv_flops(eqn)
        else:
            flops = 0
        if flops:
            totals[_scope(names, depth)] += multiplier * flops
            kinds[name] += multiplier * flops
            continue
        inner = multiplier * (eqn.params["length"] if name == "scan" else 1)
        if name == "cond":  # one branch runs: count the largest
            best = None
            for branch in eqn.params["branches"]:
                t, k = collections.Counter(), collections.Counter()
                _count(branch.jaxpr, inner, t, k, depth, names)
                if best is None or sum(k.values()) > sum(best[1].values()):
                    best = (t, k)
            if best:
                totals.update(best[0])
                kinds.update(best[1])
            continue
        for sub in _sub_jaxprs(eqn):
            _count(sub, inner, totals, kinds, depth, names)


def matmul_flops(fn, *args, depth: int = 2, **kwargs) -> dict:
    """``{'total': int, 'by_module': {scope: int}, 'by_kind': {'dot_general'|'conv_general_dilated': int}}``:
    the matrix-product FLOPs of one call ``fn(*args, **kwargs)`` (traced, not run). ``depth``:
    how many names of the module path to keep (e.g. ``encoder/Dense_0`` for 2)."""
    closed = jax.make_jaxpr(fn)(*args, **kwargs)
    totals, kinds = collections.Counter(), collections.Counter()
    _count(closed.jaxpr, 1, totals, kinds, depth)
    return {"total": int(sum(kinds.values())), "by_module": dict(totals.most_common()), "by_kind": dict(kinds)}
