"""optspec: an executable specification of optimizer update rules, and a conformance suite.

The repository keeps its parts at the top level; installed, they live under
this one namespace:

- :mod:`optspec.spec`: the update rules, pure functions over the Array API.
- :mod:`optspec.adapters`: each framework's namespace, drivers and subjects.
- :mod:`optspec.conformance`: the certifier, its CLI (``optspec``) and pytest plugin.
- ``optspec/golden``: the committed golden trajectories (data).
"""

__version__ = "0.1.0"
