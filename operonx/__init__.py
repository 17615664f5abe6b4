"""operonx: streaming-first dataflow graphs, and a compiler for them.

Users import from :mod:`operonx.core`. This top-level module stays tiny so that
importing a graph file is cheap; the compiler lives in the separate ``compiler``
package and is imported only by the CLI.
"""

__version__ = "0.1.0"
