"""Display objects in scikit-learn's Display style, and the HTML summaries.

``XDisplay.from_results(res, ..., ax=None)`` collects the data, plots it and
returns the display (like scikit-learn's ``from_estimator``);
``disp.plot(ax=None, *, ...)`` draws it again, elsewhere or with other
options.  Both return the display with ``ax_`` and ``figure_`` set (by
:class:`~mempamal.display.graph.Display`, their shared base); ``__init__``
takes the data as keyword-only arguments.

============================  ==================================================
module                        job
============================  ==================================================
:mod:`~.graph`                the base :class:`~mempamal.display.graph.Display`, the task graph, PNG/HTML helpers
:mod:`~.results`              scores, permutation scores, timeline
:mod:`~.grid`                 the inner search's scores over the grid
:mod:`~.search`               the inner search filling in: candidate x outer fold, from the outputs
:mod:`~.html`                 ``_repr_html_`` of experiments, workflows, runs and results
:mod:`~.comparison`           several models' paired outer-fold scores
============================  ==================================================

Every display and summary can be imported from here (the skins and the
api do).

Examples
--------
>>> from mempamal.display import ScoresDisplay
>>> disp = ScoresDisplay(scores={"accuracy": [0.9, 0.95, 0.92]}).plot()
>>> disp.ax_.get_ylabel()
'outer test accuracy'
"""

from ..graph.submissions import describe_jobs  # noqa: F401 (the scheduler's view, one line)
from ..graph.status import describe_mixed_versions  # noqa: F401 (outputs run under other versions)
from .comparison import ComparisonDisplay  # noqa: F401
from .graph import LAYER_OF_KIND, Display, GraphDisplay  # noqa: F401
from .graph import figure_png_html, graph_png_html, task_table_html  # noqa: F401
from .grid import GridDisplay  # noqa: F401
from .search import SearchDisplay  # noqa: F401
from .html import experiment_html, folds_html, results_html, run_html, run_jobs_line, workflow_html  # noqa: F401
from .results import PermutationDisplay, ScoresDisplay, TimelineDisplay, permutation_bins  # noqa: F401
