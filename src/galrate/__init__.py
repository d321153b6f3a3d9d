"""galrate: rate galaxy-formation simulations against survey images.

The flow (each step a CLI command and a function of the same name)::

    fetch | synth | mock | ingest  ->  image sets
    train                          ->  model file
    score                          ->  score tables
    rate                           ->  statistics, figures, report
    demo                           ->  all of it on the embedded synthetic sky

See ``shared/DESIGN.md`` in the project for the architecture.
"""

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
