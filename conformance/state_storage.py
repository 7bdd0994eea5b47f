"""State formats a subject is held to: the dtypes it stores its state fields in, declared by the user.

A subject that stores a state field in fewer bits than its parameters (optax's
``mu_dtype=jnp.bfloat16``: a bfloat16 first moment beside float32 parameters)
is certified in that set-up, not in another dtype: ``--state-dtype
FIELD=DTYPE`` (``--optspec-state-dtype`` in the pytest plugin) declares it,
the spec's run stores the field so (:mod:`optspec.spec.storage`) and the
tolerance model takes the coarser dtype's rounding for the state's history
(:mod:`optspec.conformance.tolerance`).  Where a subject that declares nothing
fails, the diagnosis tries each field stored in each coarser dtype the driver
reads from the subject, and names the declaration that explains it; it is
never taken without being declared, since a kernel that loses precision by
mistake would then pass.  A field may be declared in a blockwise 8-bit
format (:mod:`optspec.spec.quantized`; ``--state-dtype bitsandbytes-8bit``
names bitsandbytes' two), checked from the state the subject holds
(:mod:`optspec.conformance.quantized_state`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from optspec import adapters, spec
from optspec.adapters.driver import SubjectInfo


def parse_state_dtypes(texts: Sequence[str]) -> dict[str, str]:
    """``FIELD=DTYPE`` items (``exp_avg=bfloat16``, ``exp_avg=bitsandbytes-dynamic-signed``, and
    ``params=stochastic``: the parameters rounded stochastically, :mod:`optspec.conformance.rounding`) and whole-state
    presets (``bitsandbytes-8bit``, :data:`spec.quantized.PRESETS`) as one mapping; a one-line
    :class:`adapters.SetupError` for an item of neither form, a storage that is neither a float dtype nor a
    quantized format, or a field given twice."""
    storages = (*spec.storage.FLOAT_DTYPES, *spec.quantized.FORMATS)
    found: dict[str, str] = {}
    for text in texts:
        field, sep, dtype = (part.strip() for part in text.partition("="))
        if not sep and field in spec.quantized.PRESETS:
            items = dict(spec.quantized.PRESETS[field])
        elif sep and field.isidentifier() and dtype:
            items = {field: dtype}
        else:
            raise adapters.SetupError(f"--state-dtype {text!r} is not FIELD=DTYPE or a state format (e.g. "
                                      f"--state-dtype exp_avg=bfloat16, or one of "
                                      f"{', '.join(spec.quantized.PRESETS)})")
        for field, dtype in items.items():
            if field == spec.storage.PARAMS and dtype not in spec.storage.PARAM_ROUNDINGS:
                raise adapters.SetupError(f"--state-dtype {text!r}: the parameters may be declared "
                                          f"{' or '.join(f'params={r}' for r in spec.storage.PARAM_ROUNDINGS)} "
                                          "(rounded stochastically, or kept with a Kahan compensation)")
            if field != spec.storage.PARAMS and dtype not in storages:
                raise adapters.SetupError(f"--state-dtype {text!r}: {dtype!r} is not one of {', '.join(storages)}")
            if field in found:
                raise adapters.SetupError(f"--state-dtype {field} is given twice: give each state field once")
            found[field] = dtype
    return found


def stored(subject: SubjectInfo, dtypes: dict[str, str]) -> SubjectInfo:
    """``subject`` held to storing each state field of ``dtypes`` in its dtype; a one-line
    :class:`adapters.SetupError` for a field its rule's state does not have."""
    rule = spec.get_rule(subject.rule)
    try:
        storage = spec.StateStorage(dtypes).checked(rule.name, rule.state_fields)
    except ValueError as exc:
        raise adapters.SetupError(f"--state-dtype: {exc}") from None
    return dataclasses.replace(subject, state_storage=dict(spec.StateStorage(subject.state_storage).merged(
        storage.dtypes).dtypes))
