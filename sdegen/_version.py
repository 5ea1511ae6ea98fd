"""sdegen's version, in a module of its own: the run settings record it, and importing it from the
package would be an import cycle (``sdegen`` imports ``sdegen.run``)."""

__version__ = "0.1.0"
