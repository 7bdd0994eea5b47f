"""A ``torch.compile`` backend that computes the step's scalars once per call, not once per element.

The spec derives per-step scalars from the step count and the
hyperparameters (:math:`1-\\beta_1^t`, :math:`\\sqrt{1-\\beta_2^t}`,
:math:`\\mathrm{lr}/bc_1`, ...).  In a compiled step they are 0-d tensors
computed from the runtime ``scalars`` vector, and inductor inlines pointwise
0-d computations into the loops that read them: every iteration of the fused
elementwise loop would evaluate ``pow`` in double (measured at 1e7 float32
on CPU: 2.45x torch's fused AdamW).

:func:`inductor_with_hoisting` stacks every loop-invariant 0-d value that the
elementwise part reads into one small buffer per dtype, which the graph also
returns: inductor materializes a value that is both read and returned, so the
buffer is computed before the loop and the loop only loads from it.  The same
operations run in the same dtype on the same values, so the result is
unchanged; only where they run moves.  ``tests/test_compiled.py`` checks the
generated code, so a change of inductor's heuristics shows up there.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from optspec.adapters.frameworks import import_framework


def inductor_with_hoisting(scalar_input: str) -> Callable[..., Any]:
    """Inductor, after :func:`hoist_loop_invariants` of the values derived from the argument ``scalar_input``."""

    def backend(gm: Any, example_inputs: Any) -> Any:
        from torch._inductor.compile_fx import compile_fx

        outputs = len(_output_values(gm.graph))
        hoist_loop_invariants(gm.graph, scalar_input)
        gm.recompile()
        compiled = compile_fx(gm, example_inputs)

        def run(*args: Any) -> Any:
            return compiled(*args)[:outputs]  # without the stacks hoist_loop_invariants returned

        return run

    return backend


def hoist_loop_invariants(graph: Any, scalar_input: str) -> None:
    """Compute the 0-d values derived only from ``scalar_input`` into their own buffer.

    A node is loop-invariant when it is the placeholder of the function
    argument named ``scalar_input``, or a non-mutating call all of whose node
    inputs are loop-invariant.  Those that are 0-d and have a user that is not
    loop-invariant are stacked (per dtype) and read back by index in those
    users.  Each stack is also appended to the graph's outputs: inductor
    realizes a value that is both read and returned, so the stack is computed
    by its own small kernel and the elementwise loop only loads from it
    (:func:`inductor_with_hoisting` drops the extra outputs again).
    Loop-invariant nodes move to the top of the graph first, which keeps it
    topologically ordered (they depend on nothing else).
    """
    torch = import_framework("torch")
    invariant: list[Any] = []
    seen: set[Any] = set()
    for node in graph.nodes:
        if node.op == "placeholder":
            source = getattr(node.meta.get("grapharg"), "source", None)
            is_invariant = getattr(source, "local_name", None) == scalar_input
        else:
            is_invariant = (node.op in ("call_function", "call_method") and bool(node.all_input_nodes)
                            and all(i in seen for i in node.all_input_nodes) and not _mutates(node))
        if is_invariant:
            invariant.append(node)
            seen.add(node)
    anchor = next((n for n in graph.nodes if n.op != "placeholder" and n not in seen), None)
    if anchor is None:
        return
    for node in invariant:
        if node.op != "placeholder":
            anchor.prepend(node)
    by_dtype: dict[Any, list[Any]] = {}
    for node in invariant:
        value = node.meta.get("example_value")
        if (node.op != "placeholder" and isinstance(value, torch.Tensor) and value.dim() == 0
                and any(user not in seen for user in node.users)):
            by_dtype.setdefault(value.dtype, []).append(node)
    stacks = []
    with graph.inserting_before(anchor):
        for nodes in by_dtype.values():
            stacked = graph.call_function(torch.stack, (nodes,))
            stacks.append(stacked)
            keep = seen | {stacked}
            for index, node in enumerate(nodes):
                loaded = graph.call_function(operator.getitem, (stacked, index))
                node.replace_all_uses_with(loaded, delete_user_cb=lambda user, keep=keep: user not in keep)
    output = next(n for n in graph.nodes if n.op == "output")
    output.args = ((*_output_values(graph), *stacks),)


def _output_values(graph: Any) -> tuple[Any, ...]:
    (values,) = next(n for n in graph.nodes if n.op == "output").args
    return tuple(values) if isinstance(values, (tuple, list)) else (values,)


def _mutates(node: Any) -> bool:
    """Whether ``node`` writes to an input: an in-place method or function (``copy_``, ``add_``) or a setitem."""
    if node.target is operator.setitem:
        return True
    name = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", "")
    return name.endswith("_") and not name.endswith("__")
